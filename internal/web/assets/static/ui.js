import { API, el } from './api.js';

const api = new API();
const $ = (id) => document.getElementById(id);
const hub = '/ui/api'; // the trace hub, through the gateway (administrators only)
let timer = null;

function show() {
  const inside = api.signedIn();
  $('signin').hidden = inside;
  $('tabs').hidden = !inside;
  if (inside) open(location.hash.slice(1) || 'topology');
  else document.querySelectorAll('.tab').forEach((t) => { t.hidden = true; });
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  $('signin-error').textContent = '';
  try {
    await api.signIn(f.get('email'), f.get('password'), false);
    $('who').textContent = f.get('email');
    show();
  } catch (e) {
    $('signin-error').textContent = e.message;
  }
});

document.querySelectorAll('#tabs button').forEach((b) => b.addEventListener('click', () => open(b.dataset.tab)));

async function open(tab) {
  location.hash = tab;
  document.querySelectorAll('#tabs button').forEach((b) => b.classList.toggle('active', b.dataset.tab === tab));
  document.querySelectorAll('.tab').forEach((t) => { t.hidden = t.id !== tab; });
  clearInterval(timer);
  const load = { topology, traces: listTraces, deadletters, sagas }[tab];
  try {
    await load();
    if (tab === 'topology') timer = setInterval(topology, 5000);
  } catch (e) {
    if (e.status === 401 || e.status === 403) {
      $('signin-error').textContent = e.status === 403 ? 'This account is not an administrator.' : 'Sign in again.';
      api.signOut();
      show();
    }
  }
}

// --- Topology: the interaction graph of the last minutes, breaker states on the edges.

const columns = { client: 0, gateway: 1, bus: 4 };
const windowSeconds = 300;
const rate = (e) => `${(e.calls / windowSeconds).toFixed(2)}/s`;

async function topology() {
  const [graph, deps] = await Promise.all([
    api.call('GET', `${hub}/topology?since=5m&format=json`),
    api.call('GET', `${hub}/dependencies`).catch(() => ({ breakers: [], stale: [] })),
  ]);
  const state = new Map(deps.breakers.map((b) => [`${b.service}>${b.dependency}`, b.state]));
  // A service whose view of a dependency is stale calls the instances it last knew:
  // the registry has not answered it.
  const stale = new Map();
  for (const s of deps.stale || []) stale.set(s.service, [...(stale.get(s.service) || []), s.dependency]);
  const edges = graph.edges || [];
  drawGraph(edges, state, stale);
  const body = $('edges').tBodies[0];
  body.replaceChildren();
  for (const e of edges) {
    const b = state.get(`${e.from}>${e.to}`) || '';
    const old = (stale.get(e.from) || []).includes(e.to) ? 'stale view' : '';
    body.append(el('tr', { class: b === 'open' ? 'bad' : old ? 'warn' : '' }, el('td', {}, e.from), el('td', {}, e.to),
      el('td', {}, e.protocol + (e.label ? ' ' + e.label : '')), el('td', {}, e.calls), el('td', {}, rate(e)),
      el('td', {}, e.errors ? `${e.errors} (${(100 * e.errors / e.calls).toFixed(1)}%)` : '0'),
      el('td', {}, e.retries || 0), el('td', {}, [b, old].filter(Boolean).join(', '))));
  }
}

function drawGraph(edges, state, stale) {
  // Columns: the client, the gateway, the services by call depth, the bus, the databases.
  const depth = new Map();
  const place = (n) => {
    if (depth.has(n)) return depth.get(n);
    if (n in columns) return columns[n];
    if (n.endsWith('-db')) return 5;
    depth.set(n, 2); // provisional, breaks cycles
    const callers = edges.filter((e) => e.to === n && e.protocol !== 'event' && e.protocol !== 'SQL' && e.from !== n);
    const d = callers.length ? Math.min(3, Math.max(...callers.map((e) => place(e.from))) + 1) : 2;
    depth.set(n, Math.max(d, 2));
    return depth.get(n);
  };
  const nodes = [...new Set(edges.flatMap((e) => [e.from, e.to]))];
  const byCol = new Map();
  for (const n of nodes.sort()) {
    const c = place(n);
    if (!byCol.has(c)) byCol.set(c, []);
    byCol.get(c).push(n);
  }
  const pos = new Map();
  const W = 170, H = 54;
  let height = 0;
  for (const [c, list] of byCol) {
    list.forEach((n, i) => pos.set(n, { x: 20 + c * W, y: 20 + i * H }));
    height = Math.max(height, 20 + list.length * H);
  }
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('width', 20 + 6 * W);
  svg.setAttribute('height', height + 20);
  svg.setAttribute('class', 'topology');
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  for (const e of edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    const broken = state.get(`${e.from}>${e.to}`) === 'open' || e.errors > 0;
    add('line', { x1: a.x + 130, y1: a.y + 16, x2: b.x, y2: b.y + 16,
      class: `edge ${e.protocol === 'event' ? 'async' : ''} ${broken ? 'failing' : ''}` });
    if (e.protocol !== 'event') {
      add('text', { x: (a.x + 130 + b.x) / 2, y: (a.y + b.y) / 2 + 12, class: 'rate', 'text-anchor': 'middle' },
        rate(e) + (e.errors ? ` ${(100 * e.errors / e.calls).toFixed(1)}% err` : ''));
    }
  }
  for (const [n, p] of pos) {
    const g = add('g', { class: stale.has(n) ? 'node stale' : 'node', 'data-name': n });
    if (stale.has(n)) {
      const title = document.createElementNS(ns, 'title');
      title.textContent = `${n} cannot read the registry: it calls the instances it last knew of ${stale.get(n).join(', ')}`;
      g.append(title);
    }
    const r = document.createElementNS(ns, 'rect');
    Object.entries({ x: p.x, y: p.y, width: 130, height: 32, rx: 6 }).forEach(([k, v]) => r.setAttribute(k, v));
    const t = document.createElementNS(ns, 'text');
    Object.entries({ x: p.x + 65, y: p.y + 20, 'text-anchor': 'middle' }).forEach(([k, v]) => t.setAttribute(k, v));
    t.textContent = n;
    g.append(r, t);
  }
  $('graph').replaceChildren(svg);
}

// --- Traces: find one, see its sequence diagram and its log lines.

$('trace-search').addEventListener('submit', (ev) => { ev.preventDefault(); listTraces(); });

async function listTraces() {
  const f = new FormData($('trace-search'));
  const q = new URLSearchParams({ limit: '30' });
  if (f.get('value')) q.set('value', f.get('value').trim());
  if (f.get('service')) q.set('service', f.get('service'));
  const page = await api.call('GET', `${hub}/traces?${q}`);
  const list = $('trace-list');
  list.replaceChildren();
  const services = new Set();
  for (const t of page.traces) {
    t.services.forEach((s) => services.add(s));
    list.append(el('li', { 'data-trace': t.trace_id, class: t.errors ? 'bad' : '', onclick: () => showTrace(t) },
      el('strong', {}, t.root), el('br'),
      el('span', { class: 'muted' }, `${t.spans} spans · ${t.duration_ms.toFixed(1)} ms · ${t.services.join(', ')}`)));
  }
  const select = document.querySelector('#trace-search select');
  if (select.options.length === 1) [...services].sort().forEach((s) => select.append(el('option', { value: s }, s)));
  if (page.traces.length === 0) list.append(el('li', { class: 'muted' }, 'No trace matches.'));
  // Says which search the list answers, so a reader (or a test) can tell this
  // answer from the one drawn before it.
  list.dataset.query = q.get('value') || '';
  list.dataset.answered = String(Number(list.dataset.answered || 0) + 1);
}

async function showTrace(t) {
  $('trace-title').textContent = `${t.root} — ${t.trace_id}`;
  const [svg, mermaid, logs] = await Promise.all([
    fetchText(`${hub}/traces/${t.trace_id}/sequence?format=svg`),
    fetchText(`${hub}/traces/${t.trace_id}/sequence?format=mermaid`),
    api.call('GET', `${hub}/logs?trace=${t.trace_id}&limit=500`),
  ]);
  // The SVG is drawn by the hub from span names it escaped; parse it as an image
  // document rather than HTML, so nothing in it can run.
  const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
  $('sequence').replaceChildren(document.importNode(doc.documentElement, true));
  $('mermaid').textContent = mermaid;
  $('trace-logs').textContent = logs.lines.map((l) => `${l.service.padEnd(13)} ${l.level.padEnd(5)} ${l.msg}`).join('\n') || 'No log line carries this trace.';
}

async function fetchText(path) {
  const resp = await fetch(path, { headers: { Authorization: 'Bearer ' + api.token } });
  if (!resp.ok) throw Object.assign(new Error(resp.statusText), { status: resp.status });
  return resp.text();
}

// --- Dead letters, with replay.

async function deadletters() {
  const page = await api.call('GET', '/api/v1/admin/dead-letters?limit=100');
  const items = page.dead_letters;
  $('dl-note').textContent = items.length ? '' : 'No dead letter: every event was handled.';
  const body = $('dl').tBodies[0];
  body.replaceChildren();
  for (const d of items) {
    body.append(el('tr', {}, el('td', {}, d.id), el('td', {}, d.group), el('td', {}, d.event.type),
      el('td', {}, d.attempts), el('td', {}, d.last_error),
      el('td', {}, el('button', { 'data-replay': d.id, onclick: async (ev) => {
        const button = ev.target;
        button.disabled = true;
        try {
          await api.call('POST', `/api/v1/admin/dead-letters/${encodeURIComponent(d.id)}/replay`);
          button.textContent = 'Replayed';
        } catch (e) {
          // A replay the bus refuses (an event that breaks its schema) says why.
          button.replaceWith(el('span', { class: 'error', 'data-refused': d.id }, 'Refused: ' + e.message));
        }
      } }, 'Replay'))));
  }
}

// --- Sagas in flight.

$('all-sagas').addEventListener('change', sagas);

// Only the answer to the latest request is drawn: switching the tab and ticking
// "all" at once must not let the slower, older answer overwrite the newer one. The
// table's data-state says which answer it shows.
let sagaRequest = 0;
async function sagas() {
  const state = $('all-sagas').checked ? 'all' : 'unfinished';
  const mine = ++sagaRequest;
  const page = await api.call('GET', `/api/v1/admin/sagas?state=${state}&limit=100`);
  if (mine !== sagaRequest) return;
  const table = $('saga-table');
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const s of page.sagas) {
    body.append(el('tr', { class: s.status === 'stuck' ? 'bad' : '' }, el('td', {}, s.id), el('td', {}, s.status), el('td', {}, s.step),
      el('td', {}, s.reason || ''), el('td', {}, new Date(s.deadline).toLocaleTimeString()), el('td', {}, new Date(s.updated).toLocaleTimeString())));
  }
  if (page.sagas.length === 0) body.append(el('tr', {}, el('td', { colspan: 6, class: 'muted' }, 'No saga in flight.')));
  table.dataset.state = state;
}

show();
