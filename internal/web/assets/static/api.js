// The public API, as the gateway serves it: JSON in, JSON or RFC 9457 problems out.
//
// The storefront gives it its Session (oauth.js), which supplies the access token
// of the code flow and renews it when the API answers 401; the dashboard signs in
// with the JSON login and the token is kept here.
export class API {
  constructor(session = null) {
    this.session = session;
    this.saved = session ? '' : sessionStorage.getItem('switchyard.token') || '';
  }

  get token() { return this.session ? this.session.accessToken() : this.saved; }

  signedIn() { return this.token !== ''; }

  signOut() {
    this.saved = '';
    sessionStorage.removeItem('switchyard.token');
  }

  async call(method, path, body, headers = {}, renewed = false) {
    const h = { ...headers };
    if (this.token) h.Authorization = 'Bearer ' + this.token;
    if (body !== undefined) h['Content-Type'] = 'application/json';
    const resp = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    if (resp.status === 401 && this.session && !renewed && this.token) {
      // The access token expired before its renewal (a tab asleep): renew once, ask again.
      if (await this.session.renew().catch(() => false)) return this.call(method, path, body, headers, true);
    }
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
    this.saved = tokens.access_token;
    sessionStorage.setItem('switchyard.token', this.saved);
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
