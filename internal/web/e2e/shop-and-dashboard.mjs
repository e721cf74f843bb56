// The storefront and the dashboard in headless Chromium, against a running stack:
//
//   1. a visitor sees the catalogue before signing in and puts a product in the
//      cart; checking out asks them to sign in: they sign up and sign in with the
//      code flow (the provider's sign-in page, starting with their email, then
//      back), find their cart as they left it, order it, and see CONFIRMED arrive over the
//      WebSocket; the session renews itself before the access token expires (the
//      page's clock is moved on), the orders are read with the new token; signing
//      out revokes the refresh token. A sign-in answer with a tampered state is
//      refused, and so is told an error the provider sent back;
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
  // Script errors and server errors fail the run. A 4xx is an answer the pages
  // handle (the refused replay below), which the browser also logs to the console.
  const watch = (page, name) => {
    page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) errors.push(`${name} console: ${m.text()}`);
    });
    page.on('response', (r) => { if (r.status() >= 500) errors.push(`${name}: ${r.status()} from ${r.url()}`); });
  };
  const path = (r) => new URL(r.url()).pathname;

  // 1. The storefront, in a context of its own whose clock the test moves on.
  const shopContext = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  await shopContext.clock.install();
  const shop = await shopContext.newPage();
  watch(shop, 'storefront');
  const tokens = () => shop.evaluate(() => JSON.parse(sessionStorage.getItem('switchyard.storefront.tokens') || 'null'));
  // What the storefront asked and was answered, for the failure messages.
  const trail = [];
  shop.on('response', (r) => trail.push(`${r.request().method()} ${path(r)} ${r.status()}`));
  shop.on('console', (m) => trail.push(`console ${m.type()}: ${m.text()}`));
  const tokenCalls = [];
  shop.on('request', (r) => { if (path(r) === '/oidc/oauth/token') tokenCalls.push(new URLSearchParams(r.postData() || '').get('grant_type')); });

  const email = `browser-${Date.now()}@example.com`;
  const password = 'correct-horse-battery';
  await shop.goto(gateway + '/');
  // The catalogue, before any sign-in; the checkout asks for one.
  await shop.waitForSelector('#products .product button', { timeout: 10000 });
  findings.beforeSignIn = {
    products: (await shop.$$('#products .product')).length,
    signInShown: await shop.isVisible('#signin'),
    mineShown: await shop.isVisible('#mine'),
  };
  await shop.click('#products .product button >> nth=0');
  findings.beforeSignIn.place = await shop.textContent('#place');
  findings.beforeSignIn.cart = await shop.$$eval('#cart li', (lis) => lis.map((li) => li.textContent));
  await shop.screenshot({ path: join(artifacts, 'storefront-before-sign-in.png'), fullPage: true });
  await shop.click('#place');
  await shop.waitForSelector('#checkout-note:not([hidden])', { timeout: 10000 });
  findings.beforeSignIn.asked = await shop.textContent('#checkout-note');
  findings.beforeSignIn.orderCalls = trail.filter((t) => t.includes('/api/v1/orders')).length;
  await shop.fill('#signup-form input[name=email]', email);
  await shop.fill('#signup-form input[name=password]', password);
  await shop.fill('#signup-form input[name=name]', 'Brooke Browser');
  await shop.click('#signup-form button[type=submit]');
  // The provider's sign-in page, for the storefront, starting with the new email.
  await shop.waitForURL((u) => u.pathname === '/oidc/login', { timeout: 10000 })
    .catch(async () => fail(`no sign-in page after sign-up: at ${shop.url()}, ${await shop.textContent('#signup-error')}`));
  findings.provider = { heading: await shop.textContent('h1'), client: await shop.textContent('p strong'), email: await shop.inputValue('#email') };
  await shop.fill('#password', password);
  await shop.click('button[type=submit]');
  // Back in the storefront, signed in: only a finished exchange names the customer.
  await shop.waitForFunction((e) => document.getElementById('who').textContent === e, email, { timeout: 10000 })
    .catch(async () => fail(`not signed in after the provider's page: at ${shop.url()}, ` +
      `${await shop.textContent('#signin-error')}\n${trail.join('\n')}`));
  findings.signedInAs = await shop.textContent('#who');
  findings.addressAfterSignIn = shop.url();
  findings.pendingAfterSignIn = await shop.evaluate(() => sessionStorage.getItem('switchyard.storefront.pending'));
  findings.tokenCallsAtSignIn = [...tokenCalls];
  const first = await tokens();

  // The cart came back from the sign-in as it was left.
  findings.cartAfterSignIn = await shop.$$eval('#cart li', (lis) => lis.map((li) => li.textContent));
  await shop.selectOption('#card', '4242424242424242');
  await shop.click('#place');
  await shop.waitForFunction(() => document.getElementById('status').textContent === 'CONFIRMED', null, { timeout: 20000 })
    .catch(async () => fail(`the order did not show CONFIRMED: status ${await shop.textContent('#status')}, ` +
      `error ${await shop.textContent('#order-error')}, events ${await shop.textContent('#events')}`));
  findings.order = await shop.getAttribute('#order', 'data-id');
  findings.events = await shop.$$eval('#events li', (lis) => lis.map((li) => li.textContent));
  await shop.screenshot({ path: join(artifacts, 'storefront-confirmed.png'), fullPage: true });

  // The access token lives 15 minutes; 14½ minutes on, the page has renewed it.
  await shopContext.clock.fastForward('14:30');
  await shop.waitForSelector('#session[data-renewals="1"]', { timeout: 10000 })
    .catch(async () => fail(`the session was not renewed: ${await shop.textContent('#session')}, token calls ${tokenCalls}`));
  const renewed = await tokens();
  findings.renewal = {
    session: await shop.textContent('#session'),
    newAccessToken: renewed.access_token !== first.access_token,
    newRefreshToken: renewed.refresh_token !== first.refresh_token && renewed.refresh_token !== '',
    tokenCalls: [...tokenCalls],
  };
  // The customer's orders, read again, with the renewed token.
  const loads = Number(await shop.getAttribute('#orders', 'data-loads'));
  const [listed] = await Promise.all([
    shop.waitForResponse((r) => path(r) === '/api/v1/orders' && r.request().method() === 'GET', { timeout: 10000 }),
    shop.click('#orders-reload'),
  ]);
  await shop.waitForSelector(`#orders[data-loads="${loads + 1}"]`, { timeout: 10000 });
  findings.ordersAfterRenewal = {
    status: listed.status(),
    withRenewedToken: (await listed.request().headerValue('authorization')) === 'Bearer ' + renewed.access_token,
    listed: await shop.$$eval('#orders li[data-id]', (lis) => lis.map((li) => li.dataset.id)),
  };

  // Signing out revokes the refresh token at the provider: it no longer buys tokens.
  await shop.click('#signout');
  await shop.waitForSelector('#signed-out:not([hidden])', { timeout: 10000 });
  findings.signedOut = { who: await shop.textContent('#who'), tokens: await tokens(), mineHidden: await shop.isHidden('#mine'), catalogue: await shop.isVisible('#products .product') };
  const refused = await fetch(gateway + '/oidc/oauth/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: renewed.refresh_token, client_id: 'storefront' }),
  });
  findings.refreshAfterSignOut = { status: refused.status, error: (await refused.json()).error };

  // A sign-in answer whose state was tampered with on its way back is refused,
  // before its code is ever exchanged.
  // (The sign-in form's post is answered with a redirect to the provider's
  // callback, which redirects to the storefront with the code: both are followed
  // here and the last passed on with its state changed. A redirect's target is
  // never routed, the form's post is.)
  await shop.route((u) => u.pathname === '/oidc/login', async (route) => {
    if (route.request().method() !== 'POST') return route.continue();
    const signedIn = await route.fetch({ maxRedirects: 0 });
    const callback = new URL(signedIn.headers().location || '/', route.request().url());
    if (callback.pathname !== '/oidc/authorize/callback') return route.fulfill({ response: signedIn });
    const sent = await shop.request.get(callback.toString(), { maxRedirects: 0 });
    const back = new URL(sent.headers().location || '/', callback);
    if (!back.searchParams.has('code')) fail(`the provider's callback did not send a code: ${sent.status()} ${back}`);
    back.searchParams.set('state', 'tampered-' + back.searchParams.get('state'));
    return route.fulfill({ status: 302, headers: { Location: back.toString() } });
  });
  tokenCalls.length = 0;
  trail.length = 0;
  await shop.click('#signin-start');
  await shop.waitForURL((u) => u.pathname === '/oidc/login', { timeout: 10000 });
  await shop.fill('#email', email);
  await shop.fill('#password', password);
  await shop.click('button[type=submit]');
  await shop.waitForFunction(() => document.getElementById('signin-error').textContent !== '', null, { timeout: 10000 })
    .catch(async () => fail(`no refusal of a tampered state: at ${shop.url()}\n${trail.join('\n')}`));
  findings.tampered = {
    error: await shop.textContent('#signin-error'),
    address: shop.url(),
    tokenCalls: [...tokenCalls],
    tokens: await tokens(),
    mineHidden: await shop.isHidden('#mine'),
  };
  await shop.screenshot({ path: join(artifacts, 'storefront-tampered-state.png'), fullPage: true });
  await shop.unroute(() => true);

  // An error the provider sends back (with the right state) is told as it is.
  const [authorize] = await Promise.all([
    shop.waitForRequest((r) => path(r) === '/oidc/authorize', { timeout: 10000 }),
    shop.click('#signin-start'),
  ]);
  await shop.waitForURL((u) => u.pathname === '/oidc/login', { timeout: 10000 });
  const state = new URL(authorize.url()).searchParams.get('state');
  await shop.goto(gateway + '/?' + new URLSearchParams({ error: 'access_denied', error_description: 'the user did not allow it', state }));
  await shop.waitForFunction(() => document.getElementById('signin-error').textContent.includes('access_denied'), null, { timeout: 10000 })
    .catch(async () => fail(`the provider's error was not told: ${await shop.textContent('#signin-error')}`));
  findings.denied = await shop.textContent('#signin-error');

  // 2. The dashboard.
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
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
  // Each search is judged by its own answer: the list says which search and which
  // answer it shows, and the recent traces drawn when the tab opened do not count.
  for (let i = 0; i < 20 && !found; i++) {
    const answered = Number(await ui.getAttribute('#trace-list', 'data-answered') || 0);
    await ui.fill('#trace-search input[name=value]', findings.order);
    await ui.click('#trace-search button');
    await ui.waitForFunction(([order, before]) => {
      const list = document.querySelector('#trace-list');
      return list.dataset.query === order && Number(list.dataset.answered || 0) > before;
    }, [findings.order, answered], { timeout: 10000 });
    found = (await ui.$$('#trace-list li[data-trace]')).length > 0;
    if (!found) await ui.waitForTimeout(500); // the spans are still on their way to the hub
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
