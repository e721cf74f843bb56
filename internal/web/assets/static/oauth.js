// The storefront's sign-in: the OAuth 2.0 authorization code flow with PKCE
// (RFC 7636, S256) against the shop's own OpenID Connect provider, as the public
// client "storefront". Nothing here holds a secret.
//
// What a sign-in in progress needs (the PKCE verifier, state and nonce) and the
// tokens it ends with live in sessionStorage: they survive the round trip to the
// provider's sign-in page and a reload, and end with the tab.
//
// The provider is reached on the page's own origin, whatever host name the
// discovery document's URLs carry: the gateway that served this page routes /oidc
// to it, and the page's Content-Security-Policy (connect-src 'self') lets it talk
// to nothing else. The shop answers at localhost and at 127.0.0.1, and both are
// registered redirect URIs.

export const CLIENT_ID = 'storefront';
const SCOPE = 'openid profile email offline_access';
const DISCOVERY = '/oidc/.well-known/openid-configuration';
const PENDING = 'switchyard.storefront.pending';
const TOKENS = 'switchyard.storefront.tokens';
// Renew this long before the access token expires, and never sooner than this
// after the last renewal (a clock that is off must not make it spin).
const EARLY_MS = 60 * 1000;
const MIN_DELAY_MS = 5 * 1000;

// SignInError is a sign-in that did not finish, said for the customer.
export class SignInError extends Error {}

function base64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// random is n random bytes, base64url: 32 bytes make 43 characters, the least
// RFC 7636 allows for a verifier.
function random(n = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function s256(verifier) {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

// claims decodes a JWT's payload. The ID token comes straight from the token
// endpoint over the page's own connection, so its signature need not be checked
// here (OpenID Connect Core 3.1.3.7); its issuer, audience and nonce are.
function claims(jwt) {
  const part = (jwt || '').split('.')[1] || '';
  const bin = atob(part.replace(/-/g, '+').replace(/_/g, '/'));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
}

function take(key) {
  const raw = sessionStorage.getItem(key);
  sessionStorage.removeItem(key);
  try {
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export class Session {
  // onChange is called whenever the tokens change: signed in, renewed, ended.
  constructor(onChange = () => {}) {
    this.onChange = onChange;
    this.config = null;
    this.timer = 0;
    this.renewing = null;
    this.renewals = 0;
    this.lastError = ''; // why the session ended, if it ended by itself
    try {
      this.tokens = JSON.parse(sessionStorage.getItem(TOKENS) || 'null');
    } catch {
      this.tokens = null;
    }
    this.schedule();
  }

  signedIn() { return !!(this.tokens && this.tokens.access_token); }
  accessToken() { return this.signedIn() ? this.tokens.access_token : ''; }
  email() { return this.signedIn() ? this.tokens.email : ''; }
  expiresAt() { return this.signedIn() ? this.tokens.expires_at : 0; }

  redirectURI() { return location.origin + '/'; }

  // discover reads the provider's discovery document, once per page.
  async discover() {
    if (this.config) return this.config;
    const resp = await fetch(DISCOVERY, { headers: { Accept: 'application/json' } });
    if (!resp.ok) throw new SignInError(`The sign-in service did not answer (${resp.status}); try again in a moment.`);
    const doc = await resp.json();
    const here = (u) => {
      if (!u) return '';
      const url = new URL(u);
      return url.origin === new URL(doc.issuer).origin ? location.origin + url.pathname + url.search : u;
    };
    this.config = {
      issuer: doc.issuer,
      authorize: here(doc.authorization_endpoint),
      token: here(doc.token_endpoint),
      revoke: here(doc.revocation_endpoint),
      userinfo: here(doc.userinfo_endpoint),
    };
    return this.config;
  }

  // begin sends the browser to the provider's sign-in page; loginHint is the
  // email it starts with.
  async begin(loginHint = '') {
    const config = await this.discover();
    const pending = { verifier: random(32), state: random(16), nonce: random(16), redirect_uri: this.redirectURI() };
    sessionStorage.setItem(PENDING, JSON.stringify(pending));
    const url = new URL(config.authorize);
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: CLIENT_ID,
      redirect_uri: pending.redirect_uri,
      scope: SCOPE,
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: await s256(pending.verifier),
      code_challenge_method: 'S256',
      ...(loginHint ? { login_hint: loginHint } : {}),
    }).toString();
    location.assign(url.toString());
  }

  // complete finishes a sign-in the provider sent the browser back from
  // (?code=&state= or ?error=&state=): false if the page was not opened so. The
  // address is cleaned first, so that a reload never replays the answer; the
  // pending sign-in is used up whatever the outcome.
  async complete() {
    const q = new URLSearchParams(location.search);
    if (!q.has('code') && !q.has('error')) return false;
    history.replaceState(null, '', location.pathname);
    const pending = take(PENDING);
    if (!pending || !q.get('state') || q.get('state') !== pending.state) {
      throw new SignInError('Refused: this sign-in answer does not belong to a sign-in started on this page ' +
        '(its state does not match). Nothing was signed in; sign in again.');
    }
    if (q.has('error')) {
      const why = q.get('error_description') || 'no reason given';
      throw new SignInError(`The sign-in did not finish: ${why} (${q.get('error')}).`);
    }
    const config = await this.discover();
    const tokens = await this.grant(config, {
      grant_type: 'authorization_code',
      code: q.get('code'),
      redirect_uri: pending.redirect_uri,
      client_id: CLIENT_ID,
      code_verifier: pending.verifier,
    });
    const id = claims(tokens.id_token);
    const audience = [].concat(id.aud || []);
    if (id.iss !== config.issuer || !audience.includes(CLIENT_ID) || id.nonce !== pending.nonce) {
      throw new SignInError('Refused: the sign-in service answered with an ID token for another sign-in (issuer, audience or nonce).');
    }
    this.keep(tokens, id.email || await this.whoIs(config, tokens.access_token, id.sub));
    return true;
  }

  // whoIs asks userinfo for the customer's email (the provider's ID tokens carry
  // only who they are, sub); its answer counts only for the same sub (OpenID
  // Connect Core 5.3.2).
  async whoIs(config, accessToken, sub) {
    if (!config.userinfo) return sub;
    const resp = await fetch(config.userinfo, { headers: { Authorization: 'Bearer ' + accessToken, Accept: 'application/json' } });
    const info = resp.ok ? await resp.json().catch(() => ({})) : {};
    return info.sub === sub && info.email ? info.email : sub;
  }

  // grant asks the token endpoint, and says an error in words.
  async grant(config, form) {
    const resp = await fetch(config.token, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: new URLSearchParams(form),
    });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok || !body.access_token) {
      const err = new SignInError(`The sign-in service refused the ${form.grant_type === 'refresh_token' ? 'renewal' : 'sign-in'}: ` +
        `${body.error_description || body.error || resp.statusText} (${body.error || resp.status}).`);
      err.code = body.error || '';
      throw err;
    }
    return body;
  }

  keep(tokens, email) {
    this.tokens = {
      access_token: tokens.access_token,
      // Rotation: every renewal hands out a new refresh token; the old one is spent.
      refresh_token: tokens.refresh_token || (this.tokens && this.tokens.refresh_token) || '',
      expires_at: Date.now() + (Number(tokens.expires_in) || 300) * 1000,
      email: email || (this.tokens && this.tokens.email) || '',
    };
    sessionStorage.setItem(TOKENS, JSON.stringify(this.tokens));
    this.schedule();
    this.onChange(this);
  }

  schedule() {
    clearTimeout(this.timer);
    if (!this.signedIn() || !this.tokens.refresh_token) return;
    const delay = Math.max(this.tokens.expires_at - Date.now() - EARLY_MS, MIN_DELAY_MS);
    this.timer = setTimeout(() => this.renew().catch(() => {}), delay);
  }

  // renew exchanges the refresh token for new tokens, one renewal at a time. A
  // refused refresh token (spent, revoked, expired) ends the session.
  renew() {
    if (!this.renewing) {
      this.renewing = (async () => {
        if (!this.signedIn() || !this.tokens.refresh_token) return false;
        const config = await this.discover();
        try {
          const tokens = await this.grant(config, { grant_type: 'refresh_token', refresh_token: this.tokens.refresh_token, client_id: CLIENT_ID });
          this.renewals++;
          this.keep(tokens);
          return true;
        } catch (e) {
          if (e.code === 'invalid_grant') {
            this.lastError = 'Your session has ended; sign in again.';
            this.end();
          }
          throw e;
        }
      })().finally(() => { this.renewing = null; });
    }
    return this.renewing;
  }

  // signOut revokes the refresh token (and with it its family) and the access
  // token at the provider, then forgets them. The access token stays valid at the
  // services until it expires (they verify it offline), but this page no longer
  // has it.
  async signOut() {
    const tokens = this.tokens;
    this.lastError = '';
    this.end();
    if (!tokens) return;
    const config = await this.discover().catch(() => null);
    if (!config || !config.revoke) return;
    const revoke = (token, hint) => token && fetch(config.revoke, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, token_type_hint: hint, client_id: CLIENT_ID }),
    }).catch(() => {});
    await Promise.all([revoke(tokens.refresh_token, 'refresh_token'), revoke(tokens.access_token, 'access_token')]);
  }

  end() {
    clearTimeout(this.timer);
    const had = this.tokens !== null;
    this.tokens = null;
    sessionStorage.removeItem(TOKENS);
    if (had) this.onChange(this);
  }
}
