// The dashboard while the broker is down: an administrator signs in and sees, in
// the topology, the services that call their dependencies from the instances they
// last knew (the registry does not answer) — orders among them.
//
// Environment: GATEWAY, ADMIN_EMAIL, ADMIN_PASSWORD, ARTIFACTS. Prints one JSON line:
// the names of the services drawn stale.
import { join } from 'node:path';
import { launch, fail } from './browser.mjs';

const gateway = process.env.GATEWAY;
const artifacts = process.env.ARTIFACTS;
if (!gateway || !artifacts) fail('GATEWAY and ARTIFACTS are required');

const browser = await launch();
const errors = [];
let stale;
try {
  const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(gateway + '/ui/');
  await page.fill('input[name=email]', process.env.ADMIN_EMAIL);
  await page.fill('input[name=password]', process.env.ADMIN_PASSWORD);
  await page.click('#signin-form button[type=submit]');
  // The topology refreshes every 5 s: wait for orders to be drawn stale.
  await page.waitForSelector('#graph svg .node.stale[data-name="orders"]', { timeout: 20000 })
    .catch(async () => fail(`orders is not drawn stale; stale nodes: ${await page.$$eval('#graph svg .node.stale', (ns) => ns.map((n) => n.dataset.name))}`));
  stale = await page.$$eval('#graph svg .node.stale', (ns) => ns.map((n) => n.dataset.name).sort());
  await page.screenshot({ path: join(artifacts, 'dashboard-stale-views.png'), fullPage: true });
} finally {
  await browser.close();
}
if (errors.length) fail('the page reported errors:\n' + errors.join('\n'));
console.log(JSON.stringify({ stale }));
