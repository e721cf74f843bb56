// The public API, as the gateway serves it: JSON in, JSON or RFC 9457 problems out.
export class API {
  constructor() {
    this.token = sessionStorage.getItem('switchyard.token') || '';
  }

  signedIn() { return this.token !== ''; }

  signOut() {
    this.token = '';
    sessionStorage.removeItem('switchyard.token');
  }

  async call(method, path, body, headers = {}) {
    const h = { ...headers };
    if (this.token) h.Authorization = 'Bearer ' + this.token;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const resp = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const type = resp.headers.get('Content-Type') || '';
    const data = type.includes('json') ? await resp.json() : await resp.text();
    if (!resp.ok) {
      const detail = (data && data.detail) || (data && data.title) || resp.statusText;
      const err = new Error(detail);
      err.status = resp.status;
      throw err;
    }
    return data;
  }

  async signIn(email, password, register, name) {
    if (register) {
      await this.call('POST', '/api/v1/auth/register', { email, password, name: name || email.split('@')[0] });
    }
    const tokens = await this.call('POST', '/api/v1/auth/login', { email, password });
    this.token = tokens.access_token;
    sessionStorage.setItem('switchyard.token', this.token);
    return tokens;
  }

  // A WebSocket to path; browsers cannot set headers on one, so the token rides in
  // the query (the gateway accepts it there for upgrades only).
  socket(path) {
    const url = new URL(path, location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('access_token', this.token);
    return new WebSocket(url);
  }
}

// el builds an element with text content (never HTML).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
