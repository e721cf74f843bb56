// Shared by the browser scripts: headless Chromium from the machine (Debian's
// chromium package), driven by playwright-core.
import { chromium } from 'playwright-core';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
  });
}

export function fail(message) {
  console.error('FAIL: ' + message);
  process.exit(1);
}
