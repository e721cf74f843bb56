// Usage: node mermaid-check.mjs file.mmd...
// Parses each file with the mermaid package, in a real browser page (mermaid needs
// a DOM), and fails on the first syntax error.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { launch, fail } from './browser.mjs';

const require = createRequire(import.meta.url);
const mermaidJS = require.resolve('mermaid/dist/mermaid.min.js');
const browser = await launch();
try {
  const page = await browser.newPage();
  await page.setContent('<!doctype html><html><body></body></html>');
  await page.addScriptTag({ path: mermaidJS });
  for (const file of process.argv.slice(2)) {
    const src = readFileSync(file, 'utf8');
    const result = await page.evaluate(async (text) => {
      try {
        const ok = await window.mermaid.parse(text);
        return ok ? '' : 'mermaid.parse returned false';
      } catch (e) {
        return String((e && e.message) || e);
      }
    }, src);
    if (result) fail(`${file} does not parse: ${result}`);
    console.log(`ok ${file} (${src.split('\n').length} lines)`);
  }
} finally {
  await browser.close();
}
