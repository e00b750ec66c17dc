/**
 * Registry authentication as Docker does it: the registry answers 401 with a
 * `WWW-Authenticate` challenge; for `Basic` the credentials go along with every
 * request, for `Bearer` a token for the needed scopes is fetched from the
 * challenge's realm (the token server) and cached until it expires.
 * @module
 */

import createDebug from 'debug';
import { AbortedError, AuthenticationError, RegistryError, RegistryUnavailableError } from '../../errors.js';
import type { RegistryCredentials } from './config.js';

const debug = createDebug('dockless:registry:auth');

/** One challenge of a `WWW-Authenticate` header. */
export interface Challenge {
  /** Lowercased scheme: `bearer` or `basic`. */
  scheme: string;
  /** Parameters with lowercased names: `realm`, `service`, `scope`, `error`. */
  params: Record<string, string>;
}

/**
 * Parse a `WWW-Authenticate` header (RFC 7235), which may hold several
 * challenges: `Bearer realm="https://auth",service="reg",scope="repository:a:pull"`.
 */
export function parseAuthenticate(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const skipSpace = () => {
    while (i < n && /[\s,]/.test(header[i]!)) i++;
  };
  const token = () => {
    const start = i;
    while (i < n && /[!#$%&'*+\-.^_`|~0-9A-Za-z/]/.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skipSpace();
    if (i >= n) break;
    const word = token();
    if (!word) {
      i++;
      continue;
    }
    let j = i;
    while (j < n && header[j] === ' ') j++;
    if (header[j] === '=' && current) {
      i = j + 1;
      while (i < n && header[i] === ' ') i++;
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++;
      } else {
        const start = i;
        while (i < n && header[i] !== ',' && !/\s/.test(header[i]!)) i++;
        value = header.slice(start, i);
      }
      current.params[word.toLowerCase()] = value;
    } else {
      current = { scheme: word.toLowerCase(), params: {} };
      challenges.push(current);
    }
  }
  return challenges;
}

/** `repository:<name>:pull` or `repository:<name>:pull,push`. */
export function repositoryScope(repository: string, actions: 'pull' | 'push'): string {
  return `repository:${repository}:${actions === 'push' ? 'pull,push' : 'pull'}`;
}

/** Where credentials for a registry come from. */
export type CredentialLookup = (registry: string) => Promise<RegistryCredentials | undefined>;

type HostAuth = { scheme: 'basic' } | { scheme: 'bearer'; realm: string; service: string | undefined };

interface CachedToken {
  token: string;
  /** Epoch ms after which the token is not used any more. */
  refreshAt: number;
}

/** An Authorization header value and whether it was just obtained (not from a cache). */
export interface AuthHeader {
  value: string;
  fresh: boolean;
}

/**
 * Per-client authentication state: which scheme each registry asked for, and
 * the bearer tokens obtained so far (per realm, service, scopes and user).
 * Concurrent requests that need the same token share one token request.
 * @internal
 */
export class Authenticator {
  private readonly hosts = new Map<string, HostAuth>();
  private readonly tokens = new Map<string, CachedToken>();
  private readonly pending = new Map<string, Promise<CachedToken>>();

  constructor(
    private readonly fetchImpl: typeof fetch,
    private readonly credentials: CredentialLookup,
    /** Whether a host may be spoken to over plain HTTP (for token realms). */
    private readonly mayUseHttp: (host: string) => boolean,
    private readonly userAgent: string,
  ) {}

  /**
   * The Authorization header to send up front, when the registry's scheme is
   * already known from an earlier challenge (saves the 401 round trip).
   */
  async preemptive(registry: string, scopes: string[], signal?: AbortSignal): Promise<AuthHeader | undefined> {
    const host = this.hosts.get(registry);
    if (!host) return undefined;
    return this.headerFor(registry, host, scopes, false, signal);
  }

  /**
   * Answer a 401. `sent` is the Authorization header the failed request
   * carried. A cached token that was refused is dropped and replaced once; a
   * freshly obtained one that was refused means the access is denied.
   * @throws AuthenticationError when no (other) credentials can help.
   */
  async challenge(
    registry: string,
    response: Response,
    scopes: string[],
    sent: AuthHeader | undefined,
    signal?: AbortSignal,
  ): Promise<AuthHeader> {
    const header = response.headers.get('www-authenticate');
    const detail = await errorDetail(response);
    if (sent?.fresh) {
      // Credentials obtained just now were refused: retrying cannot help.
      const registryCode = detail ? errorCodeOf(detail) : undefined;
      if (sent.value.startsWith('Basic ')) {
        const user = Buffer.from(sent.value.slice(6), 'base64').toString().split(':')[0];
        throw new AuthenticationError(registry, `the registry refused the credentials of user ${JSON.stringify(user)}${detail ? `: ${detail}` : ''}`, {
          status: response.status,
          registryCode,
        });
      }
      throw new AuthenticationError(
        registry,
        `access denied to ${scopes.join(' ') || 'the registry'} (the repository may not exist, or the credentials do not grant this access)` +
          (detail ? `: ${detail}` : ''),
        { status: response.status, registryCode },
      );
    }
    const challenges = header ? parseAuthenticate(header) : [];
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    let host: HostAuth;
    if (bearer?.params.realm) {
      host = { scheme: 'bearer', realm: bearer.params.realm, service: bearer.params.service };
    } else if (basic) {
      host = { scheme: 'basic' };
    } else {
      throw new AuthenticationError(registry, `authentication required but the registry sent no usable challenge (${header ?? 'no WWW-Authenticate header'})`, { status: response.status });
    }
    this.hosts.set(registry, host);
    if (sent && host.scheme === 'bearer') this.dropToken(sent.value);
    const answer = await this.headerFor(registry, host, scopes, true, signal, sent);
    if (!answer) throw new AuthenticationError(registry, 'authentication required and no credentials are configured', { status: 401 });
    return answer;
  }

  private async headerFor(
    registry: string,
    host: HostAuth,
    scopes: string[],
    afterChallenge: boolean,
    signal: AbortSignal | undefined,
    sent?: AuthHeader,
  ): Promise<AuthHeader | undefined> {
    const creds = await this.credentials(registry);
    if (host.scheme === 'basic') {
      if (!creds?.username || creds.password === undefined) {
        if (!afterChallenge) return undefined;
        throw new AuthenticationError(registry, 'authentication required and no credentials are configured for this registry', { status: 401 });
      }
      const value = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
      if (afterChallenge && sent?.value === value) {
        throw new AuthenticationError(registry, `the registry refused the credentials of user ${JSON.stringify(creds.username)}`, { status: 401 });
      }
      return { value, fresh: afterChallenge };
    }
    if (creds?.registryToken) {
      const value = `Bearer ${creds.registryToken}`;
      if (afterChallenge && sent?.value === value) {
        throw new AuthenticationError(registry, 'the registry refused the configured registry token', { status: 401 });
      }
      return { value, fresh: afterChallenge };
    }
    const key = [host.realm, host.service ?? '', [...scopes].sort().join(' '), creds?.username ?? '', creds?.identityToken ? 'id' : ''].join('\n');
    const cached = this.tokens.get(key);
    if (cached && cached.refreshAt > Date.now()) return { value: `Bearer ${cached.token}`, fresh: false };
    let inflight = this.pending.get(key);
    if (!inflight) {
      inflight = this.fetchToken(registry, host, scopes, creds, signal).finally(() => this.pending.delete(key));
      this.pending.set(key, inflight);
    }
    const token = await inflight;
    this.tokens.set(key, token);
    return { value: `Bearer ${token.token}`, fresh: true };
  }

  private dropToken(headerValue: string): void {
    for (const [key, cached] of this.tokens) {
      if (`Bearer ${cached.token}` === headerValue) this.tokens.delete(key);
    }
  }

  private async fetchToken(
    registry: string,
    host: Extract<HostAuth, { scheme: 'bearer' }>,
    scopes: string[],
    creds: RegistryCredentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<CachedToken> {
    let realm: URL;
    try {
      realm = new URL(host.realm);
    } catch {
      throw new AuthenticationError(registry, `the token realm ${JSON.stringify(host.realm)} is not a URL`);
    }
    if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && this.mayUseHttp(realm.host))) {
      // Credentials must not travel in clear text to a host that was not declared insecure.
      throw new AuthenticationError(registry, `the token realm ${realm.href} is not https and its host is not an insecure registry`);
    }
    const headers: Record<string, string> = { 'user-agent': this.userAgent };
    let init: RequestInit;
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', client_id: 'dockless', refresh_token: creds.identityToken });
      if (host.service) form.set('service', host.service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      headers['content-type'] = 'application/x-www-form-urlencoded';
      init = { method: 'POST', headers, body: form.toString() };
    } else {
      if (host.service) realm.searchParams.set('service', host.service);
      for (const scope of scopes) realm.searchParams.append('scope', scope);
      if (creds?.username && creds.password !== undefined) {
        realm.searchParams.set('account', creds.username);
        headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
      }
      init = { method: 'GET', headers };
    }
    debug('token request %s %s', init.method, realm.origin + realm.pathname, scopes);
    const requested = Date.now();
    let response: Response;
    try {
      response = await this.fetchImpl(realm, { ...init, redirect: 'manual', signal });
    } catch (e) {
      if (signal?.aborted) throw new AbortedError();
      throw new RegistryUnavailableError(registry, `cannot reach the token server ${realm.origin}: ${describeFetchError(e)}`, e);
    }
    if (response.status === 401 || response.status === 403) {
      const detail = await errorDetail(response);
      throw new AuthenticationError(
        registry,
        creds?.username
          ? `the token server ${realm.origin} refused the credentials of user ${JSON.stringify(creds.username)}${detail ? `: ${detail}` : ''}`
          : `the token server ${realm.origin} requires credentials${detail ? `: ${detail}` : ''}`,
        { status: response.status },
      );
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new RegistryError(registry, `the token server ${realm.origin} answered HTTP ${response.status}`, { status: response.status });
    }
    let body: { token?: string; access_token?: string; expires_in?: number };
    try {
      body = (await response.json()) as typeof body;
    } catch (e) {
      throw new RegistryError(registry, `the token server ${realm.origin} sent a malformed answer`, { status: 200, cause: e });
    }
    const token = body.token || body.access_token;
    if (typeof token !== 'string' || !token) {
      throw new RegistryError(registry, `the token server ${realm.origin} sent no token`, { status: 200 });
    }
    // The spec's default lifetime is 60 s. It is counted from when the request
    // was sent rather than from `issued_at`: never later than the real issue
    // time, and immune to clock skew between the hosts. A token is refreshed a
    // little early so that it does not expire in flight.
    const lifetimeMs = (typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : 60) * 1000;
    const margin = Math.min(10_000, lifetimeMs / 10);
    return { token, refreshAt: requested + lifetimeMs - margin };
  }
}

/** The registry's error body (`{"errors":[{code,message,detail}]}`) summarized, or '' when there is none. */
export async function errorDetail(response: Response): Promise<string> {
  let text: string;
  try {
    text = await response.text();
  } catch {
    return '';
  }
  try {
    const body = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    const first = body.errors?.[0];
    if (first) return `${first.code ?? 'ERROR'}: ${first.message ?? ''}`.trim();
  } catch {
    /* not JSON: fall through to the raw text */
  }
  return text.trim().slice(0, 200);
}

/** The code part of a summary made by {@link errorDetail}. */
export function errorCodeOf(detail: string): string | undefined {
  const m = /^([A-Z_]+):/.exec(detail);
  return m?.[1];
}

/** A short reason for a fetch() rejection: the system error code when there is one. */
export function describeFetchError(e: unknown): string {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return `${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  if (cause?.message) return cause.message;
  return (e as Error)?.message ?? String(e);
}
