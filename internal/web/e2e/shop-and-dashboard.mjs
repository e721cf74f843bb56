// The storefront and the dashboard in headless Chromium, against a running stack:
//
//   1. a new customer signs up in the storefront, puts a product in the cart,
//      orders it, and sees CONFIRMED arrive over the WebSocket;
//   2. an administrator opens the dashboard, sees the topology, finds that order's
//      trace by its id and sees its sequence diagram (client, gateway, orders,
//      inventory, payments, the bus) and its log lines; then a dead letter, whose
//      replay is refused with the reason; then the sagas.
//
// Environment: GATEWAY (http://127.0.0.1:port), ADMIN_EMAIL, ADMIN_PASSWORD,
// ARTIFACTS (a directory for the screenshots). Prints one JSON line of findings.
import { join } from 'node:path';
import { launch, fail } from './browser.mjs';

const gateway = process.env.GATEWAY;
const artifacts = process.env.ARTIFACTS;
if (!gateway || !artifacts) fail('GATEWAY and ARTIFACTS are required');

const browser = await launch();
const errors = [];
const findings = {};
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  // Script errors and server errors fail the run. A 4xx is an answer the pages
  // handle (the refused replay below), which the browser also logs to the console.
  const watch = (page, name) => {
    page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) errors.push(`${name} console: ${m.text()}`);
    });
    page.on('response', (r) => { if (r.status() >= 500) errors.push(`${name}: ${r.status()} from ${r.url()}`); });
  };

  // 1. The storefront.
  const shop = await context.newPage();
  watch(shop, 'storefront');
  await shop.goto(gateway + '/');
  await shop.fill('input[name=email]', `browser-${Date.now()}@example.com`);
  await shop.fill('input[name=password]', 'correct-horse-battery');
  await shop.fill('input[name=name]', 'Brooke Browser');
  await shop.check('input[name=register]');
  await shop.click('#signin-form button[type=submit]');
  await shop.waitForSelector('#products .product button', { timeout: 10000 });
  await shop.click('#products .product button >> nth=0');
  await shop.selectOption('#card', '4242424242424242');
  await shop.click('#place');
  await shop.waitForFunction(() => document.getElementById('status').textContent === 'CONFIRMED', null, { timeout: 20000 })
    .catch(async () => fail(`the order did not show CONFIRMED: status ${await shop.textContent('#status')}, ` +
      `error ${await shop.textContent('#order-error')}, events ${await shop.textContent('#events')}`));
  findings.order = await shop.getAttribute('#order', 'data-id');
  findings.events = await shop.$$eval('#events li', (lis) => lis.map((li) => li.textContent));
  await shop.screenshot({ path: join(artifacts, 'storefront-confirmed.png'), fullPage: true });

  // 2. The dashboard.
  const ui = await context.newPage();
  watch(ui, 'dashboard');
  await ui.goto(gateway + '/ui/');
  await ui.fill('input[name=email]', process.env.ADMIN_EMAIL);
  await ui.fill('input[name=password]', process.env.ADMIN_PASSWORD);
  await ui.click('#signin-form button[type=submit]');
  // The topology refreshes every 5 s, spans arrive within a second or two: wait for
  // every hop of the order to be drawn.
  await ui.waitForFunction(() => ['gateway', 'orders', 'inventory', 'payments', 'bus']
    .every((n) => document.querySelector(`#graph svg .node[data-name="${n}"]`)), null, { timeout: 30000 });
  findings.topology = await ui.$$eval('#graph svg .node', (ns) => ns.map((n) => n.dataset.name).sort());
  await ui.screenshot({ path: join(artifacts, 'dashboard-topology.png'), fullPage: true });

  await ui.click('#tabs button[data-tab=traces]');
  // The order's spans reach the hub within the exporters' batching: search until found.
  let found = false;
  for (let i = 0; i < 20 && !found; i++) {
    await ui.fill('#trace-search input[name=value]', findings.order);
    await ui.click('#trace-search button');
    await ui.waitForTimeout(500);
    found = (await ui.$$('#trace-list li[data-trace]')).length > 0;
  }
  if (!found) fail(`no trace found for order ${findings.order}`);
  await ui.click('#trace-list li[data-trace] >> nth=0');
  await ui.waitForSelector('#sequence svg .participant', { timeout: 10000 });
  findings.trace = await ui.getAttribute('#trace-list li[data-trace] >> nth=0', 'data-trace');
  findings.participants = await ui.$$eval('#sequence svg .participant', (ps) => ps.map((p) => p.dataset.name));
  findings.messages = await ui.$$eval('#sequence svg .message', (ms) => ms.length);
  findings.logLines = (await ui.textContent('#trace-logs')).split('\n').length;
  await ui.screenshot({ path: join(artifacts, 'dashboard-sequence.png'), fullPage: true });

  // The test dead-lettered an event that breaks its schema: it is listed, and its
  // replay is refused with the reason.
  await ui.click('#tabs button[data-tab=deadletters]');
  await ui.waitForSelector('#dl tbody tr button[data-replay]', { timeout: 15000 });
  findings.deadLetters = await ui.$$eval('#dl tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent).join(' | ')));
  await ui.click('#dl tbody tr button[data-replay] >> nth=0');
  findings.replay = await (await ui.waitForSelector('[data-refused]', { timeout: 10000 })).textContent();
  await ui.screenshot({ path: join(artifacts, 'dashboard-dead-letters.png'), fullPage: true });
  await ui.click('#tabs button[data-tab=sagas]');
  await ui.check('#all-sagas');
  // Wait for the answer to "all", not for rows: the unfinished list drawn first
  // already has a row ("No saga in flight.").
  await ui.waitForSelector('#saga-table[data-state=all]', { timeout: 10000 });
  findings.sagas = await ui.$$eval('#saga-table tbody tr', (rs) => rs.map((r) => r.cells[0].textContent));
  await ui.screenshot({ path: join(artifacts, 'dashboard-sagas.png'), fullPage: true });
} finally {
  await browser.close();
}
if (errors.length) fail('the pages reported errors:\n' + errors.join('\n'));
console.log(JSON.stringify(findings));
