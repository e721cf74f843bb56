import { API, el } from './api.js';
import { Session } from './oauth.js';

const $ = (id) => document.getElementById(id);
const session = new Session(() => show());
const api = new API(session);
const cart = new Map(); // product id → {product, quantity}, kept in sessionStorage across the sign-in
const cartKey = 'switchyard.storefront.cart';
let socket = null;
let currentOrder = '';
let shown = false; // whether the shop is drawn for a signed-in customer
const heard = []; // every notification this page received, for an order not yet known

// The catalogue and the cart are anyone's; the sign-in is asked for at checkout,
// and what is the customer's own (their orders, what happens to them) shows after.
function show() {
  const inside = session.signedIn();
  if (inside) $('signin').hidden = true;
  $('signin-open').hidden = inside;
  $('mine').hidden = !inside;
  $('signout').hidden = !inside;
  $('place').textContent = inside ? 'Place order' : 'Sign in to order';
  $('who').textContent = session.email();
  const expires = session.expiresAt();
  $('session').textContent = !inside ? '' : session.renewals
    ? `session renewed ${session.renewals}×, until ${new Date(expires).toLocaleTimeString()}`
    : `session until ${new Date(expires).toLocaleTimeString()}`;
  $('session').dataset.renewals = String(session.renewals);
  if (!inside && session.lastError) askSignIn(session.lastError);
  if (inside && !shown) {
    $('signed-out').hidden = true;
    $('checkout-note').hidden = true;
    $('signin-error').textContent = '';
    loadOrders();
    listen();
  }
  if (!inside && socket) socket.close();
  shown = inside;
}

// askSignIn opens the sign-in card, telling why when there is an error.
function askSignIn(error = '', checkout = false) {
  $('signin').hidden = false;
  $('checkout-note').hidden = !checkout;
  if (error) $('signin-error').textContent = error;
  $('signin').scrollIntoView({ block: 'nearest' });
}

$('signin-open').addEventListener('click', () => askSignIn());

// Sign-in is the provider's page (the code flow in oauth.js).
$('signin-start').addEventListener('click', async () => {
  $('signin-error').textContent = '';
  try {
    await session.begin();
  } catch (e) {
    $('signin-error').textContent = e.message;
  }
});

// A new customer's account is made with the users API; signing in is then the
// code flow, on a sign-in page that starts with their email.
$('signup-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const email = f.get('email');
  $('signup-error').textContent = '';
  try {
    await api.call('POST', '/api/v1/auth/register', { email, password: f.get('password'), name: f.get('name') || email.split('@')[0] });
    await session.begin(email);
  } catch (e) {
    $('signup-error').textContent = e.message;
  }
});

$('signout').addEventListener('click', async () => {
  $('signout').disabled = true;
  await session.signOut();
  $('signout').disabled = false;
  $('signed-out').hidden = false;
  askSignIn();
});

async function loadProducts() {
  const page = await api.call('GET', '/api/v1/products?limit=24');
  const grid = $('products');
  grid.replaceChildren();
  for (const p of page.items) {
    const left = p.available === undefined ? '' : `${p.available} left`;
    grid.append(el('div', { class: 'product', 'data-id': p.id },
      el('h3', {}, p.name),
      el('p', { class: 'muted' }, p.category),
      el('p', {}, `${p.price} ${p.currency}`, el('span', { class: 'muted' }, ' ' + left)),
      el('button', { onclick: () => add(p), 'data-add': p.id }, 'Add to cart')));
  }
}

function add(p) {
  const line = cart.get(p.id) || { product: p, quantity: 0 };
  line.quantity++;
  cart.set(p.id, line);
  drawCart();
}

// The cart survives the trip to the sign-in page and back (this tab only).
function saveCart() {
  if (cart.size) sessionStorage.setItem(cartKey, JSON.stringify([...cart.values()]));
  else sessionStorage.removeItem(cartKey);
}

function restoreCart() {
  try {
    for (const line of JSON.parse(sessionStorage.getItem(cartKey) || '[]')) {
      if (line && line.product && line.product.id && line.quantity > 0) cart.set(line.product.id, line);
    }
  } catch {
    sessionStorage.removeItem(cartKey);
  }
}

function drawCart() {
  const list = $('cart');
  list.replaceChildren();
  let total = 0;
  let currency = '';
  for (const { product, quantity } of cart.values()) {
    total += product.price_minor * quantity;
    currency = product.currency;
    list.append(el('li', {}, `${quantity} × ${product.name}`));
  }
  $('total').textContent = cart.size ? `Total ${(total / 100).toFixed(2)} ${currency}` : 'Empty.';
  $('place').disabled = cart.size === 0;
  saveCart();
}

$('place').addEventListener('click', async () => {
  $('order-error').textContent = '';
  if (!session.signedIn()) {
    askSignIn('', true);
    return;
  }
  const items = [...cart.values()].map(({ product, quantity }) => ({ product_id: product.id, quantity }));
  try {
    const order = await api.call('POST', '/api/v1/orders', { items, payment: { card_number: $('card').value } },
      { 'Idempotency-Key': crypto.randomUUID() });
    currentOrder = order.id;
    cart.clear();
    drawCart();
    $('order').textContent = `Order ${order.id}`;
    $('order').dataset.id = order.id;
    setStatus(order.status);
    $('events').replaceChildren();
    heard.filter((n) => n.order_id === currentOrder).forEach(tell);
    loadOrders();
  } catch (e) {
    $('order-error').textContent = e.message;
  }
});

// The customer's own orders, newest first.
async function loadOrders() {
  const list = $('orders');
  try {
    const page = await api.call('GET', '/api/v1/orders?limit=20');
    list.replaceChildren(...page.items.map((o) => el('li', { 'data-id': o.id }, `${o.id} — ${o.status}`)));
    if (!page.items.length) list.append(el('li', { class: 'muted' }, 'None yet.'));
  } catch (e) {
    list.replaceChildren(el('li', { class: 'error' }, e.message));
  }
  list.dataset.loads = String(Number(list.dataset.loads) + 1);
}

$('orders-reload').addEventListener('click', loadOrders);

function setStatus(status) {
  $('status').textContent = status;
  $('status').dataset.status = status;
}

// The notifications WebSocket: every notification of this customer as it happens.
function listen() {
  if (socket && socket.readyState <= 1) return;
  socket = api.socket('/api/v1/notifications');
  socket.addEventListener('message', (ev) => {
    const n = JSON.parse(ev.data);
    heard.push(n);
    if (n.order_id === currentOrder) tell(n);
    const listed = [...$('orders').children].find((li) => li.dataset.id === n.order_id);
    if (listed && n.type.startsWith('orders.order.')) listed.textContent = `${n.order_id} — ${n.status}`;
  });
  socket.addEventListener('close', () => {
    if (session.signedIn()) setTimeout(listen, 1000);
  });
}

// tell shows a notification of the current order; the order's own events set its status.
function tell(n) {
  $('events').append(el('li', {}, `${n.message} (${n.type})`));
  if (n.type.startsWith('orders.order.')) setStatus(n.status);
}

restoreCart();
drawCart();
loadProducts().catch((e) => {
  $('products').replaceChildren(el('p', { class: 'error' }, e.message));
});
// Back from the provider (?code=&state=, or ?error=): finish the sign-in, or say
// why it did not.
session.complete().catch((e) => {
  askSignIn(e.message);
}).finally(show);
