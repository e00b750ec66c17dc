/**
 * A client for the Distribution (OCI / Docker Registry HTTP API v2) protocol:
 * resolve a reference to a verified manifest and config for one platform,
 * stream verified blobs, and push blobs and manifests.
 *
 * Everything handed on has been checked against its digest: manifests and
 * configs before they are returned, blobs before their stream ends (a blob
 * stream that does not match fails with {@link DigestMismatchError} instead
 * of ending).
 * @module
 */

import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import createDebug from 'debug';
import {
  AbortedError,
  AuthenticationError,
  DigestMismatchError,
  DocklessError,
  InvalidImageError,
  InvalidOptionError,
  ManifestNotFoundError,
  RegistryError,
  RegistryUnavailableError,
} from '../../errors.js';
import { digestProblem, familiarName, type ImageReference } from '../reference.js';
import { Authenticator, errorCodeOf, errorDetail, repositoryScope } from './auth.js';
import { BlobStream } from './blob-stream.js';
import {
  credentialsFromDockerConfig,
  type DockerConfigFile,
  dockerConfigPath,
  InsecureRegistries,
  loadDockerConfig,
  type RegistryCredentials,
} from './config.js';
import {
  type Descriptor,
  digestOf,
  type ImageConfigFile,
  type ImageIndex,
  type ImageManifest,
  MANIFEST_ACCEPT,
  MAX_CONFIG_SIZE,
  MAX_MANIFEST_SIZE,
  ManifestFormatError,
  parseImageConfig,
  parseManifest,
  type ParsedManifest,
  verifyDigest,
} from './manifest.js';
import { currentPlatform, normalizePlatform, parsePlatform, type Platform, selectManifest } from './platform.js';
import { type Endpoint, Transport } from './transport.js';

const debug = createDebug('dockless:registry');

/** How registries are reached: options of the registry client (`EngineOptions.registry`). */
export interface RegistryClientOptions {
  /**
   * Registries that may be spoken to over plain HTTP when HTTPS fails, as
   * `host`, `host:port` or CIDR (like daemon.json's `insecure-registries`).
   * Loopback registries (127.0.0.0/8, ::1, localhost) always may, as in Docker.
   */
  insecureRegistries?: readonly string[];
  /**
   * Pull-through mirrors of Docker Hub, as URLs (`https://mirror.example`),
   * tried in order before Docker Hub itself for docker.io pulls, like
   * daemon.json's `registry-mirrors`. Pushes never go to mirrors.
   */
  mirrors?: readonly string[];
  /**
   * Where a registry is really reached, by registry name:
   * `{ "docker.io": "https://registry-1.docker.io" }` is built in. Credentials
   * are still looked up under the registry name.
   */
  endpoints?: Readonly<Record<string, string>>;
  /**
   * Explicit credentials by registry name (`docker.io`, `localhost:5000`), or
   * a function returning them. They win over Docker's config file.
   */
  auth?:
    | Readonly<Record<string, RegistryCredentials>>
    | ((registry: string) => RegistryCredentials | undefined | Promise<RegistryCredentials | undefined>);
  /**
   * Docker client config to take credentials from; by default
   * `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. `false` reads none.
   */
  dockerConfigPath?: string | false;
  /** The fetch implementation (Node's own by default); tests use it to watch traffic. */
  fetch?: typeof fetch;
  /** User-Agent header sent to registries. */
  userAgent?: string;
  /** How many times a broken blob download is resumed with a Range request (default 5). */
  maxBlobRetries?: number;
}

/** A manifest or index as fetched, verified against its digest. */
export interface FetchedManifest {
  /** Its digest (what a reference `name@digest` would name). */
  digest: string;
  /** Its media type. */
  mediaType: string;
  /** The exact bytes, as they hash to `digest`. */
  bytes: Buffer;
  /** The parsed document. */
  parsed: ParsedManifest;
}

/** An image resolved for one platform, every document verified. */
export interface ResolvedImage {
  /** The reference that was resolved. */
  reference: ImageReference;
  /**
   * The digest the reference resolved to: the index's for a multi-platform
   * image, else the manifest's. This is the "repo digest" Docker shows.
   */
  digest: string;
  /** The index the manifest was chosen from, for multi-platform images. */
  index?: { digest: string; mediaType: string; bytes: Buffer; index: ImageIndex; descriptor: Descriptor };
  /** The platform's image manifest. */
  manifest: ImageManifest;
  /** Digest of the image manifest. */
  manifestDigest: string;
  /** Media type of the image manifest (Docker schema2 or OCI). */
  manifestMediaType: string;
  /** The exact manifest bytes. */
  manifestBytes: Buffer;
  /** The parsed image config. */
  config: ImageConfigFile;
  /** The exact config bytes. */
  configBytes: Buffer;
  /** Digest of the config: the image id. */
  configDigest: string;
  /** The layers, base first (the manifest's `layers`). */
  layers: Descriptor[];
  /** The image's platform, from its config. */
  platform: Platform;
}

/** Options of {@link RegistryClient.resolve}. */
export interface ResolveOptions {
  /** The platform to choose from a multi-platform image; the current process's by default. */
  platform?: Platform | string;
  signal?: AbortSignal;
}

/** Options of {@link RegistryClient.fetchBlob}. */
export interface FetchBlobOptions {
  /** Called as bytes arrive with the bytes of the blob done so far (including `offset`) and its size. */
  onProgress?: (done: number, total: number) => void;
  /** Aborting destroys the stream (or rejects the call) with {@link AbortedError}. */
  signal?: AbortSignal;
  /**
   * Start at this byte (to continue a partial download the caller kept). The
   * stream then yields the bytes from `offset` on; `hash` must be given.
   */
  offset?: number;
  /**
   * With `offset`: a hash of the descriptor's algorithm (`createHash('sha256')`)
   * already updated with the first `offset` bytes, so that the whole blob is
   * still verified before the stream ends.
   */
  hash?: Hash;
  /** Override {@link RegistryClientOptions.maxBlobRetries} for this download. */
  maxRetries?: number;
}

/** Options of {@link RegistryClient.pushBlob}. */
export interface PushBlobOptions {
  /**
   * A repository on the same registry that has the blob (`org/base` or a
   * reference): the registry is asked to mount it from there instead of
   * receiving the data again. A reference to another registry is ignored, and
   * a registry that cannot mount simply starts an ordinary upload.
   */
  mountFrom?: string | ImageReference;
  /** Upload in PATCH chunks of this many bytes; by default one streaming PUT. */
  chunkSize?: number;
  /** Called as bytes are sent with the bytes done so far and the size. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/** What {@link RegistryClient.pushBlob} did. */
export interface PushBlobResult {
  digest: string;
  size: number;
  /** `exists`: the repository had it already; `mounted`: mounted from `mountFrom`; `uploaded`: the data was sent. */
  status: 'exists' | 'mounted' | 'uploaded';
}

/** The data of a blob to push; called again when the upload must be restarted. */
export type BlobSource = () => Readable | AsyncIterable<Uint8Array> | Uint8Array;

const DEFAULT_USER_AGENT = 'dockless/0.1 (+https://github.com/dockless)';
const DOCKER_HUB = 'docker.io';
/** After a mirror fails to answer, it is skipped for this long. */
const MIRROR_BACKOFF_MS = 60_000;

/**
 * A client for image registries (Distribution API v2), with Docker's
 * conventions for authentication, insecure registries and mirrors.
 * One client keeps its token cache and per-registry knowledge for its
 * lifetime; share it between pulls.
 *
 * @example
 * ```ts
 * const client = new RegistryClient();
 * const image = await client.resolve(parseReference('alpine:3.20'));
 * for (const layer of image.layers) {
 *   const stream = await client.fetchBlob(image.reference, layer);
 *   await pipeline(stream, createWriteStream(`/tmp/${layer.digest}`));
 * }
 * ```
 */
export class RegistryClient {
  private readonly fetchImpl: typeof fetch;
  private readonly transport: Transport;
  private readonly mirrors: Endpoint[];
  private readonly mirrorDownUntil = new Map<string, number>();
  private readonly maxBlobRetries: number;
  private readonly auth: RegistryClientOptions['auth'];
  private readonly configPath: string | false;
  private dockerConfig: DockerConfigFile | undefined;
  private readonly credentialCache = new Map<string, Promise<RegistryCredentials | undefined>>();
  private readonly options: RegistryClientOptions;

  /** @throws InvalidOptionError for malformed mirrors, endpoints or insecure registries. */
  constructor(options: RegistryClientOptions = {}) {
    this.options = options;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    this.auth = options.auth;
    this.configPath = options.dockerConfigPath ?? dockerConfigPath();
    this.maxBlobRetries = options.maxBlobRetries ?? 5;
    const insecure = new InsecureRegistries(options.insecureRegistries);
    const userAgent = options.userAgent ?? DEFAULT_USER_AGENT;
    const fixed: Record<string, string> = { [DOCKER_HUB]: 'https://registry-1.docker.io' };
    for (const [registry, url] of Object.entries(options.endpoints ?? {})) {
      fixed[registry] = originOf(url, 'endpoints');
    }
    this.mirrors = (options.mirrors ?? []).map((url) => {
      const origin = originOf(url, 'mirrors');
      return { registry: new URL(origin).host, origin, mirror: true };
    });
    const authenticator = new Authenticator(
      this.fetchImpl,
      (registry) => this.credentialsFor(registry),
      (host) => insecure.has(host),
      userAgent,
    );
    this.transport = new Transport(this.fetchImpl, authenticator, insecure, userAgent, fixed);
  }

  /**
   * A client with the same settings that uses `credentials` for `registry`
   * (and the configured credentials for every other registry). It has its own
   * token cache, so tokens granted to other credentials are never reused.
   */
  withCredentials(registry: string, credentials: RegistryCredentials): RegistryClient {
    const base = this.options.auth;
    return new RegistryClient({
      ...this.options,
      auth: async (name) => {
        if (name === registry) return credentials;
        return typeof base === 'function' ? base(name) : base?.[name];
      },
    });
  }

  /**
   * Check that `registry` speaks the v2 API and accepts the configured
   * credentials (what `docker login` checks).
   * @throws AuthenticationError when the credentials are refused.
   * @throws RegistryUnavailableError when it cannot be reached.
   */
  async ping(registry: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    const endpoint = { registry };
    const response = await this.transport.send(endpoint, { method: 'GET', path: '/v2/', scopes: [], signal: options.signal });
    if (!response.ok) throw await this.failure(endpoint, response, `API check of ${registry}`);
    await response.body?.cancel();
  }

  /**
   * Fetch the manifest or index a reference names (by digest when it has one,
   * else by tag), verified against its digest: the reference's digest, or the
   * Docker-Content-Digest the registry sent.
   * @throws ManifestNotFoundError when the registry has no such repository, tag or digest.
   * @throws DigestMismatchError when the bytes do not match the digest.
   */
  async fetchManifest(ref: ImageReference, options: { signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    const target = ref.digest ?? ref.tag ?? 'latest';
    return this.withPullEndpoints(ref, (endpoint) => this.getManifest(endpoint, ref, target, options.signal));
  }

  /**
   * Resolve a reference for one platform: its manifest (chosen from the index
   * for multi-platform images, skipping attestations), and its config.
   * @throws ManifestNotFoundError when the image does not exist.
   * @throws NoMatchingPlatformError when a multi-platform image lacks the platform.
   * @throws DigestMismatchError when any document does not match its digest.
   * @throws AuthenticationError, RegistryUnavailableError or RegistryError when the registry refuses or fails.
   */
  async resolve(ref: ImageReference, options: ResolveOptions = {}): Promise<ResolvedImage> {
    const want = typeof options.platform === 'string'
      ? parsePlatform(options.platform)
      : normalizePlatform(options.platform ?? currentPlatform());
    const { signal } = options;
    return this.withPullEndpoints(ref, async (endpoint) => {
      const top = await this.getManifest(endpoint, ref, ref.digest ?? ref.tag ?? 'latest', signal);
      let index: ResolvedImage['index'];
      let chosen = top;
      if (top.parsed.kind === 'index') {
        const descriptor = selectManifest(top.parsed.index, want, familiarName(ref));
        chosen = await this.getManifest(endpoint, ref, descriptor.digest, signal);
        index = { digest: top.digest, mediaType: top.mediaType, bytes: top.bytes, index: top.parsed.index, descriptor };
      }
      if (chosen.parsed.kind !== 'manifest') {
        throw new RegistryError(endpoint.registry, `${familiarName(ref)}: an index inside an index is not supported`);
      }
      const manifest = chosen.parsed.manifest;
      const configBytes = await this.getBlobBytes(endpoint, ref, manifest.config, MAX_CONFIG_SIZE, signal);
      let config: ImageConfigFile;
      try {
        config = parseImageConfig(configBytes, manifest);
      } catch (e) {
        throw this.formatError(endpoint, ref, e);
      }
      const platform: Platform = { os: config.os, architecture: config.architecture };
      if (config.variant) platform.variant = config.variant;
      return {
        reference: ref,
        digest: top.digest,
        ...(index ? { index } : {}),
        manifest,
        manifestDigest: chosen.digest,
        manifestMediaType: chosen.mediaType,
        manifestBytes: chosen.bytes,
        config,
        configBytes,
        configDigest: manifest.config.digest,
        layers: manifest.layers,
        platform,
      };
    });
  }

  /**
   * Download a blob (a layer) as a stream. The promise settles once the
   * registry has answered, so "not found" and "denied" reject it; the stream
   * then yields the blob's bytes, resumes with Range requests when the
   * connection breaks, and fails with {@link DigestMismatchError} instead of
   * ending when the content does not match `descriptor.digest`.
   * @throws InvalidOptionError for a malformed descriptor or offset.
   */
  async fetchBlob(ref: ImageReference, descriptor: Descriptor, options: FetchBlobOptions = {}): Promise<Readable> {
    checkDescriptor(descriptor);
    const offset = options.offset ?? 0;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > descriptor.size) {
      throw new InvalidOptionError('offset', `must be an integer from 0 to the blob size ${descriptor.size}`);
    }
    if (offset > 0 && !options.hash) {
      throw new InvalidOptionError('hash', 'resuming at an offset needs the hash of the bytes before it, so the whole blob can be verified');
    }
    const hash = options.hash ?? createHash(descriptor.digest.slice(0, descriptor.digest.indexOf(':')));
    if (options.signal?.aborted) throw new AbortedError('blob download aborted');
    if (offset === descriptor.size) {
      const actual = `${descriptor.digest.slice(0, descriptor.digest.indexOf(':'))}:${hash.digest('hex')}`;
      if (actual !== descriptor.digest) throw new DigestMismatchError(descriptor.digest, actual);
      return Readable.from([]);
    }
    return this.withPullEndpoints(ref, async (endpoint) => {
      // One controller for every request of this download, so destroying the
      // stream (or the caller's abort) closes whatever connection is open.
      const controller = new AbortController();
      const onAbort = () => controller.abort();
      options.signal?.addEventListener('abort', onAbort, { once: true });
      let cleaned = false;
      const cleanup = () => {
        if (cleaned) return;
        cleaned = true;
        options.signal?.removeEventListener('abort', onAbort);
        controller.abort();
      };
      const reopen = async (from: number): Promise<Response> => {
        let response: Response;
        try {
          response = await this.transport.send(endpoint, {
            method: 'GET',
            path: `/v2/${ref.repository}/blobs/${descriptor.digest}`,
            headers: from > 0 ? { range: `bytes=${from}-` } : {},
            scopes: [repositoryScope(ref.repository, 'pull')],
            signal: controller.signal,
          });
        } catch (e) {
          if (e instanceof AbortedError || controller.signal.aborted) throw new AbortedError('blob download aborted');
          throw e;
        }
        if (response.status !== 200 && response.status !== 206) {
          throw await this.failure(endpoint, response, `blob ${descriptor.digest} of ${familiarName(ref)}`);
        }
        return response;
      };
      try {
        const first = await reopen(offset);
        return new BlobStream({
          registry: endpoint.registry,
          descriptor,
          first,
          offset,
          hash,
          reopen,
          maxRetries: options.maxRetries ?? this.maxBlobRetries,
          onProgress: options.onProgress,
          signal: options.signal,
          cleanup,
        });
      } catch (e) {
        cleanup();
        throw e;
      }
    });
  }

  /**
   * Download a small blob (a config, an attestation) into memory, verified.
   * @param options.maxSize refuse blobs larger than this (default 16 MiB).
   */
  async fetchBlobBytes(
    ref: ImageReference,
    descriptor: Descriptor,
    options: { signal?: AbortSignal; maxSize?: number } = {},
  ): Promise<Buffer> {
    checkDescriptor(descriptor);
    return this.withPullEndpoints(ref, (endpoint) =>
      this.getBlobBytes(endpoint, ref, descriptor, options.maxSize ?? MAX_CONFIG_SIZE, options.signal));
  }

  /**
   * Whether the repository has the blob (HEAD request).
   * @throws AuthenticationError, RegistryUnavailableError or RegistryError when the registry refuses or fails.
   */
  async blobExists(ref: ImageReference, digest: string, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    checkDigest(digest);
    return this.headBlob({ registry: ref.registry }, ref, digest, [repositoryScope(ref.repository, 'pull')], options.signal);
  }

  /**
   * Push a blob unless the repository already has it: mounted from
   * `mountFrom` when that repository has it, else uploaded (one streaming PUT,
   * or PATCH chunks with `chunkSize`). The data is hashed as it is sent and
   * the upload fails with {@link DigestMismatchError} (nothing is committed)
   * when it does not match `blob.digest`.
   * @param source produces the data; called again if the upload has to restart.
   */
  async pushBlob(
    ref: ImageReference,
    blob: { digest: string; size: number },
    source: BlobSource,
    options: PushBlobOptions = {},
  ): Promise<PushBlobResult> {
    checkDigest(blob.digest);
    if (!Number.isSafeInteger(blob.size) || blob.size < 0) throw new InvalidOptionError('size', 'must be a non-negative integer');
    if (options.chunkSize !== undefined && (!Number.isSafeInteger(options.chunkSize) || options.chunkSize <= 0)) {
      throw new InvalidOptionError('chunkSize', 'must be a positive integer');
    }
    const endpoint: Endpoint = { registry: ref.registry };
    const { signal } = options;
    const mountFrom = typeof options.mountFrom === 'string' ? options.mountFrom : options.mountFrom?.registry === ref.registry ? options.mountFrom.repository : undefined;
    const scopes = [repositoryScope(ref.repository, 'push')];
    if (mountFrom && mountFrom !== ref.repository) scopes.push(repositoryScope(mountFrom, 'pull'));
    const base = `/v2/${ref.repository}/blobs/uploads/`;
    const result = { digest: blob.digest, size: blob.size };

    if (await this.headBlob(endpoint, ref, blob.digest, scopes, signal)) return { ...result, status: 'exists' };

    let start: Response;
    if (mountFrom && mountFrom !== ref.repository) {
      const query = new URLSearchParams({ mount: blob.digest, from: mountFrom });
      start = await this.transport.send(endpoint, { method: 'POST', path: `${base}?${query}`, headers: { 'content-length': '0' }, scopes, signal });
      if (start.status === 201) {
        await start.body?.cancel();
        debug('mounted %s into %s from %s', blob.digest, ref.repository, mountFrom);
        return { ...result, status: 'mounted' };
      }
    } else {
      start = await this.transport.send(endpoint, { method: 'POST', path: base, headers: { 'content-length': '0' }, scopes, signal });
    }
    if (start.status !== 202) throw await this.failure(endpoint, start, `starting the upload of ${blob.digest} to ${familiarName(ref)}`);
    await start.body?.cancel();
    let location = this.uploadLocation(endpoint, start, ref);

    try {
      if (options.chunkSize === undefined || blob.size <= options.chunkSize) {
        const url = withDigest(location, blob.digest);
        const response = await this.transport.send(endpoint, {
          method: 'PUT',
          path: url,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(blob.size) },
          body: () => verifiedSource(source(), blob, options.onProgress),
          scopes,
          signal,
        });
        if (response.status !== 201) throw await this.failure(endpoint, response, `uploading ${blob.digest} to ${familiarName(ref)}`);
        await this.checkCommitted(endpoint, response, blob.digest);
      } else {
        let offset = 0;
        for await (const chunk of rechunk(verifiedSource(source(), blob, options.onProgress), options.chunkSize)) {
          const response = await this.transport.send(endpoint, {
            method: 'PATCH',
            path: location,
            headers: {
              'content-type': 'application/octet-stream',
              'content-length': String(chunk.length),
              'content-range': `${offset}-${offset + chunk.length - 1}`,
            },
            body: () => chunk,
            scopes,
            signal,
          });
          if (response.status !== 202) throw await this.failure(endpoint, response, `uploading a chunk of ${blob.digest} to ${familiarName(ref)}`);
          await response.body?.cancel();
          location = this.uploadLocation(endpoint, response, ref);
          offset += chunk.length;
        }
        const response = await this.transport.send(endpoint, {
          method: 'PUT',
          path: withDigest(location, blob.digest),
          headers: { 'content-length': '0' },
          scopes,
          signal,
        });
        if (response.status !== 201) throw await this.failure(endpoint, response, `committing ${blob.digest} to ${familiarName(ref)}`);
        await this.checkCommitted(endpoint, response, blob.digest);
      }
    } catch (e) {
      // Leave no half-finished upload session behind on the registry.
      this.transport
        .send(endpoint, { method: 'DELETE', path: location, scopes })
        .then((r) => r.body?.cancel(), () => undefined)
        .catch(() => undefined);
      throw e;
    }
    return { ...result, status: 'uploaded' };
  }

  /**
   * Push a manifest or index under the reference's tag (or, without a tag,
   * its digest). The bytes are checked to be a manifest of `mediaType`, and
   * to hash to the reference's digest when it has one.
   * @returns the manifest's digest, as confirmed by the registry.
   */
  async pushManifest(
    ref: ImageReference,
    bytes: Uint8Array,
    mediaType: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<string> {
    const endpoint: Endpoint = { registry: ref.registry };
    const digest = ref.digest ? verifyDigest(bytes, ref.digest) : digestOf(bytes, 'sha256:');
    try {
      parseManifest(bytes, mediaType);
    } catch (e) {
      if (e instanceof ManifestFormatError) throw new InvalidOptionError('manifest', e.message);
      throw e;
    }
    const target = ref.tag ?? digest;
    const response = await this.transport.send(endpoint, {
      method: 'PUT',
      path: `/v2/${ref.repository}/manifests/${target}`,
      headers: { 'content-type': mediaType },
      body: () => bytes,
      scopes: [repositoryScope(ref.repository, 'push')],
      signal: options.signal,
    });
    if (response.status !== 201) throw await this.failure(endpoint, response, `pushing the manifest of ${familiarName(ref)}`);
    await this.checkCommitted(endpoint, response, digest);
    return digest;
  }

  /**
   * The tags of a repository (following the registry's pagination).
   * @throws ManifestNotFoundError when the repository does not exist.
   */
  async listTags(ref: ImageReference, options: { signal?: AbortSignal } = {}): Promise<string[]> {
    return this.withPullEndpoints(ref, async (endpoint) => {
      const tags: string[] = [];
      let path: string | undefined = `/v2/${ref.repository}/tags/list`;
      for (let page = 0; path && page < 1000; page++) {
        const response = await this.transport.send(endpoint, {
          method: 'GET',
          path,
          scopes: [repositoryScope(ref.repository, 'pull')],
          signal: options.signal,
        });
        if (!response.ok) throw await this.failure(endpoint, response, `listing the tags of ${ref.repository}`, familiarName(ref));
        const body = (await response.json().catch(() => ({}))) as { tags?: unknown };
        if (Array.isArray(body.tags)) tags.push(...body.tags.filter((t): t is string => typeof t === 'string'));
        const link = response.headers.get('link');
        path = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link)?.[1] : undefined;
      }
      return tags;
    });
  }

  // --- internals ---------------------------------------------------------

  private async getManifest(endpoint: Endpoint, ref: ImageReference, target: string, signal?: AbortSignal): Promise<FetchedManifest> {
    const response = await this.transport.send(endpoint, {
      method: 'GET',
      path: `/v2/${ref.repository}/manifests/${target}`,
      headers: { accept: MANIFEST_ACCEPT.join(', ') },
      scopes: [repositoryScope(ref.repository, 'pull')],
      signal,
    });
    const shown = target.includes(':') ? `${familiarName({ ...ref, tag: undefined, digest: target })}` : familiarName(ref);
    if (!response.ok) throw await this.failure(endpoint, response, `manifest of ${shown}`, shown);
    const bytes = await readLimited(response, MAX_MANIFEST_SIZE, endpoint.registry, `manifest of ${shown}`, signal);
    let digest: string;
    if (target.includes(':')) {
      digest = verifyDigest(bytes, target);
    } else {
      const header = response.headers.get('docker-content-digest');
      digest = header && !digestProblem(header) ? verifyDigest(bytes, header) : digestOf(bytes, 'sha256:');
    }
    let parsed: ParsedManifest;
    try {
      parsed = parseManifest(bytes, response.headers.get('content-type') ?? undefined);
    } catch (e) {
      throw this.formatError(endpoint, ref, e);
    }
    debug('manifest %s %s %s', shown, parsed.mediaType, digest);
    return { digest, mediaType: parsed.mediaType, bytes, parsed };
  }

  private async getBlobBytes(endpoint: Endpoint, ref: ImageReference, descriptor: Descriptor, maxSize: number, signal?: AbortSignal): Promise<Buffer> {
    const what = `blob ${descriptor.digest} of ${familiarName(ref)}`;
    if (descriptor.size > maxSize) {
      throw new RegistryError(endpoint.registry, `${what} is ${descriptor.size} bytes, more than the ${maxSize} allowed here`);
    }
    const response = await this.transport.send(endpoint, {
      method: 'GET',
      path: `/v2/${ref.repository}/blobs/${descriptor.digest}`,
      scopes: [repositoryScope(ref.repository, 'pull')],
      signal,
    });
    if (response.status !== 200) throw await this.failure(endpoint, response, what);
    const bytes = await readLimited(response, descriptor.size, endpoint.registry, what, signal);
    verifyDigest(bytes, descriptor.digest);
    return bytes;
  }

  private async headBlob(endpoint: Endpoint, ref: ImageReference, digest: string, scopes: string[], signal?: AbortSignal): Promise<boolean> {
    const response = await this.transport.send(endpoint, {
      method: 'HEAD',
      path: `/v2/${ref.repository}/blobs/${digest}`,
      scopes,
      signal,
    });
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw await this.failure(endpoint, response, `checking blob ${digest} in ${familiarName(ref)}`);
  }

  /** The upload URL a POST or PATCH answered with (Location, made absolute). */
  private uploadLocation(endpoint: Endpoint, response: Response, ref: ImageReference): string {
    const location = response.headers.get('location');
    if (!location) throw new RegistryError(endpoint.registry, `the upload to ${familiarName(ref)} got no Location`, { status: response.status });
    return new URL(location, response.url).href;
  }

  private async checkCommitted(endpoint: Endpoint, response: Response, digest: string): Promise<void> {
    await response.body?.cancel();
    const confirmed = response.headers.get('docker-content-digest');
    if (confirmed && confirmed !== digest) throw new DigestMismatchError(digest, confirmed);
    debug('committed %s on %s', digest, endpoint.registry);
  }

  /** Run a pull-side operation on each endpoint in turn: Docker Hub mirrors first, then the registry. */
  private async withPullEndpoints<T>(ref: ImageReference, op: (endpoint: Endpoint) => Promise<T>): Promise<T> {
    const endpoints: Endpoint[] = [];
    if (ref.registry === DOCKER_HUB) {
      const now = Date.now();
      endpoints.push(...this.mirrors.filter((m) => (this.mirrorDownUntil.get(m.origin!) ?? 0) <= now));
    }
    endpoints.push({ registry: ref.registry });
    for (let i = 0; ; i++) {
      const endpoint = endpoints[i]!;
      try {
        return await op(endpoint);
      } catch (e) {
        const last = i === endpoints.length - 1;
        if (last || !(e instanceof DocklessError) || e instanceof AbortedError || e instanceof InvalidOptionError) throw e;
        debug('mirror %s failed, trying the next endpoint: %s', endpoint.origin, e.message);
        if (e instanceof RegistryUnavailableError) this.mirrorDownUntil.set(endpoint.origin!, Date.now() + MIRROR_BACKOFF_MS);
      }
    }
  }

  /** The error for a registry answer that is not the expected one. */
  private async failure(endpoint: Endpoint, response: Response, what: string, manifestOf?: string): Promise<Error> {
    const detail = await errorDetail(response);
    const registryCode = errorCodeOf(detail);
    const status = response.status;
    const suffix = detail ? `: ${detail}` : '';
    if (manifestOf && status === 404) return new ManifestNotFoundError(manifestOf, endpoint.registry, registryCode);
    if (status === 401 || status === 403) {
      return new AuthenticationError(endpoint.registry, `${what}: access denied (HTTP ${status})${suffix}`, { status, registryCode });
    }
    if (status === 429) return new RegistryError(endpoint.registry, `${what}: too many requests, try again later${suffix}`, { status, registryCode });
    return new RegistryError(endpoint.registry, `${what}: HTTP ${status}${suffix}`, { status, registryCode });
  }

  private formatError(endpoint: Endpoint, ref: ImageReference, e: unknown): unknown {
    if (e instanceof ManifestFormatError) return new InvalidImageError(`${familiarName(ref)} from ${endpoint.registry}: ${e.message}`);
    return e;
  }

  private credentialsFor(registry: string): Promise<RegistryCredentials | undefined> {
    let pending = this.credentialCache.get(registry);
    if (!pending) {
      pending = this.lookupCredentials(registry);
      this.credentialCache.set(registry, pending);
      // A failed lookup (helper crashed) is not remembered.
      pending.catch(() => this.credentialCache.delete(registry));
    }
    return pending;
  }

  private async lookupCredentials(registry: string): Promise<RegistryCredentials | undefined> {
    const explicit = typeof this.auth === 'function' ? await this.auth(registry) : this.auth?.[registry];
    if (explicit) return explicit;
    if (this.configPath === false) return undefined;
    this.dockerConfig ??= loadDockerConfig(this.configPath);
    return credentialsFromDockerConfig(this.dockerConfig, registry);
  }
}

function originOf(url: string, option: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidOptionError(option, `${JSON.stringify(url)} is not a URL`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new InvalidOptionError(option, `${JSON.stringify(url)} must be an http or https URL`);
  }
  return parsed.origin;
}

function checkDigest(digest: string): void {
  const problem = digestProblem(digest);
  if (problem) throw new InvalidOptionError('digest', problem);
}

function checkDescriptor(d: Descriptor): void {
  checkDigest(d.digest);
  if (!Number.isSafeInteger(d.size) || d.size < 0) throw new InvalidOptionError('descriptor.size', 'must be a non-negative integer');
}

function withDigest(location: string, digest: string): string {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url.href;
}

/** Read a whole response body, refusing more than `limit` bytes. */
async function readLimited(response: Response, limit: number, registry: string, what: string, signal?: AbortSignal): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length') ?? NaN);
  if (declared > limit) {
    await response.body?.cancel();
    throw new RegistryError(registry, `${what} is ${declared} bytes, more than the ${limit} expected`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body ?? []) {
      total += chunk.length;
      if (total > limit) throw new RegistryError(registry, `${what} is longer than the ${limit} bytes expected`);
      chunks.push(chunk);
    }
  } catch (e) {
    if (signal?.aborted) throw new AbortedError();
    if (e instanceof DocklessError) throw e;
    throw new RegistryUnavailableError(registry, `connection lost while reading ${what}`, e);
  }
  return Buffer.concat(chunks, total);
}

/** Hash and count the data as it goes out; fail instead of ending when it is not the declared blob. */
async function* verifiedSource(
  input: Readable | AsyncIterable<Uint8Array> | Uint8Array,
  blob: { digest: string; size: number },
  onProgress?: (done: number, total: number) => void,
): AsyncGenerator<Uint8Array> {
  const hash = createHash(blob.digest.slice(0, blob.digest.indexOf(':')));
  let done = 0;
  const source: AsyncIterable<Uint8Array> = input instanceof Uint8Array ? [input] as unknown as AsyncIterable<Uint8Array> : input;
  for await (const raw of source) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    done += chunk.length;
    if (done > blob.size) throw new InvalidOptionError('size', `the blob source gave more than the declared ${blob.size} bytes`);
    hash.update(chunk);
    yield chunk;
    onProgress?.(done, blob.size);
  }
  if (done !== blob.size) throw new InvalidOptionError('size', `the blob source gave ${done} bytes, not the declared ${blob.size}`);
  const actual = `${blob.digest.slice(0, blob.digest.indexOf(':'))}:${hash.digest('hex')}`;
  if (actual !== blob.digest) throw new DigestMismatchError(blob.digest, actual);
}

/** Regroup a byte stream into buffers of exactly `size` bytes (the last one shorter). */
async function* rechunk(source: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let parts: Uint8Array[] = [];
  let length = 0;
  for await (let chunk of source) {
    while (length + chunk.length >= size) {
      const take = size - length;
      parts.push(chunk.subarray(0, take));
      yield Buffer.concat(parts, size);
      parts = [];
      length = 0;
      chunk = chunk.subarray(take);
    }
    if (chunk.length) {
      parts.push(chunk);
      length += chunk.length;
    }
  }
  if (length) yield Buffer.concat(parts, length);
}
