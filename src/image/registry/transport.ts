/**
 * HTTP to registries: choosing https or (for insecure registries only) http,
 * authenticating, following redirects by hand so that credentials never reach
 * another host, and turning connection failures into typed errors.
 * @internal
 * @module
 */

import createDebug from 'debug';
import { AbortedError, DocklessError, RegistryError, RegistryUnavailableError } from '../../errors.js';
import type { AuthHeader, Authenticator } from './auth.js';
import { describeFetchError } from './auth.js';
import type { InsecureRegistries } from './config.js';

const debug = createDebug('dockless:registry:http');

/** Where a registry is reached. */
export interface Endpoint {
  /** The registry as named in references (for credentials, auth state and error messages). */
  registry: string;
  /** A fixed origin such as `https://mirror.example` or `http://127.0.0.1:5000`; else derived from `registry`. */
  origin?: string;
  /** True for a pull-through mirror of Docker Hub. */
  mirror?: boolean;
}

/** A request body that can be produced again (for auth retries and redirects). */
export type BodyFactory = () => NonNullable<RequestInit['body']> | AsyncIterable<Uint8Array>;

/** One request, relative to an endpoint. */
export interface RequestSpec {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** A path such as `/v2/library/busybox/manifests/latest`, or an absolute URL on the registry (upload locations). */
  path: string;
  headers?: Record<string, string>;
  body?: BodyFactory;
  /** The token scopes the request needs. */
  scopes: string[];
  signal?: AbortSignal;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;

/** @internal */
export class Transport {
  /** The origin that answered for each registry (https, or http for insecure ones). */
  private readonly origins = new Map<string, string>();

  constructor(
    private readonly fetchImpl: typeof fetch,
    private readonly auth: Authenticator,
    private readonly insecure: InsecureRegistries,
    private readonly userAgent: string,
    /** Origins of registries known under another name (`docker.io` → `https://registry-1.docker.io`). */
    private readonly fixedOrigins: Record<string, string>,
  ) {}

  /**
   * Send a request and return the response whatever its status, except that
   * a 401 from the registry is answered with credentials (once with cached
   * ones, once with fresh ones) before it is given up on.
   * @throws RegistryUnavailableError when the registry cannot be reached.
   * @throws AuthenticationError when authentication fails.
   * @throws AbortedError when `spec.signal` aborts.
   */
  async send(endpoint: Endpoint, spec: RequestSpec): Promise<Response> {
    let sent: AuthHeader | undefined = await this.auth.preemptive(endpoint.registry, spec.scopes, spec.signal);
    for (;;) {
      const { response, origin } = await this.dispatch(endpoint, spec, sent);
      if (response.status !== 401 || new URL(response.url || origin).origin !== origin) return response;
      sent = await this.auth.challenge(endpoint.registry, response, spec.scopes, sent, spec.signal);
    }
  }

  /** The origin requests for `endpoint` go to, once it is known. */
  originOf(endpoint: Endpoint): string | undefined {
    return endpoint.origin ?? this.fixedOrigins[endpoint.registry] ?? this.origins.get(endpoint.registry);
  }

  private async dispatch(
    endpoint: Endpoint,
    spec: RequestSpec,
    sent: AuthHeader | undefined,
  ): Promise<{ response: Response; origin: string }> {
    const known = this.originOf(endpoint);
    if (known) return { response: await this.follow(endpoint, known, spec, sent), origin: known };
    // Like Docker: https first; plain http only for insecure registries, and
    // only when https cannot be spoken there at all.
    const candidates = [`https://${endpoint.registry}`];
    if (this.insecure.has(endpoint.registry)) candidates.push(`http://${endpoint.registry}`);
    const failures: RegistryUnavailableError[] = [];
    for (const origin of candidates) {
      try {
        const response = await this.follow(endpoint, origin, spec, sent);
        this.origins.set(endpoint.registry, origin);
        return { response, origin };
      } catch (e) {
        if (!(e instanceof RegistryUnavailableError)) throw e;
        debug('%s unreachable: %s', origin, e.message);
        failures.push(e);
      }
    }
    const last = failures[failures.length - 1]!;
    if (failures.length === 1) throw last;
    throw new RegistryUnavailableError(
      endpoint.registry,
      `cannot connect over https or http: ${failures.map((f) => f.message.replace(/^registry [^:]+: /, '')).join('; ')}`,
      last.cause,
    );
  }

  /** Send, following redirects by hand; Authorization goes only to the registry's own origin. */
  private async follow(endpoint: Endpoint, origin: string, spec: RequestSpec, sent: AuthHeader | undefined): Promise<Response> {
    let url = new URL(spec.path, origin);
    let method: string = spec.method;
    let body = spec.body;
    for (let hops = 0; ; hops++) {
      const headers = new Headers(spec.headers);
      headers.set('user-agent', this.userAgent);
      if (sent && url.origin === new URL(origin).origin) headers.set('authorization', sent.value);
      const init: RequestInit & { duplex?: 'half' } = { method, headers, redirect: 'manual', signal: spec.signal };
      if (body) {
        init.body = body() as RequestInit['body'];
        init.duplex = 'half';
      }
      debug('%s %s', method, url.href);
      let response: Response;
      try {
        response = await this.fetchImpl(url, init);
      } catch (e) {
        throw fetchFailure(endpoint.registry, url, e, spec.signal);
      }
      if (!REDIRECTS.has(response.status)) return response;
      const location = response.headers.get('location');
      if (!location) return response;
      await response.body?.cancel().catch(() => undefined);
      if (hops >= MAX_REDIRECTS) {
        throw new RegistryError(endpoint.registry, `too many redirects for ${spec.method} ${spec.path}`, { status: response.status });
      }
      const next = new URL(location, url);
      if (next.protocol !== 'https:' && next.protocol !== 'http:') {
        throw new RegistryError(endpoint.registry, `redirect to unsupported URL ${next.protocol}`, { status: response.status });
      }
      if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) {
        method = method === 'HEAD' ? 'HEAD' : 'GET';
        body = undefined;
      }
      debug('redirect %d to %s', response.status, next.origin === url.origin ? next.pathname : next.origin);
      url = next;
    }
  }
}

/** Map a fetch() rejection to the error to throw: abort, an error raised by the body, or unavailability. */
export function fetchFailure(registry: string, url: URL, e: unknown, signal?: AbortSignal): Error {
  if (signal?.aborted) return new AbortedError();
  // An error thrown by a request body (e.g. a digest check while uploading) arrives as the cause.
  const cause = (e as { cause?: unknown }).cause;
  if (cause instanceof DocklessError) return cause;
  if (e instanceof DocklessError) return e;
  return new RegistryUnavailableError(registry, `cannot connect to ${url.origin}: ${describeFetchError(e)}`, e);
}
