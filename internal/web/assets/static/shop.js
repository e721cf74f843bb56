import { API, el } from './api.js';

const api = new API();
const $ = (id) => document.getElementById(id);
const cart = new Map(); // product id → {product, quantity}
let socket = null;
let currentOrder = '';
const heard = []; // every notification this page received, for an order not yet known

function show() {
  const inside = api.signedIn();
  $('signin').hidden = inside;
  $('shop').hidden = !inside;
  $('signout').hidden = !inside;
  if (inside) {
    loadProducts();
    listen();
  }
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  $('signin-error').textContent = '';
  try {
    await api.signIn(f.get('email'), f.get('password'), f.get('register') === 'on', f.get('name'));
    $('who').textContent = f.get('email');
    show();
  } catch (e) {
    $('signin-error').textContent = e.message;
  }
});

$('signout').addEventListener('click', () => {
  api.signOut();
  if (socket) socket.close();
  show();
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
}

$('place').addEventListener('click', async () => {
  $('order-error').textContent = '';
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
  } catch (e) {
    $('order-error').textContent = e.message;
  }
});

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
  });
  socket.addEventListener('close', () => {
    if (api.signedIn()) setTimeout(listen, 1000);
  });
}

// tell shows a notification of the current order; the order's own events set its status.
function tell(n) {
  $('events').append(el('li', {}, `${n.message} (${n.type})`));
  if (n.type.startsWith('orders.order.')) setStatus(n.status);
}

drawCart();
show();
