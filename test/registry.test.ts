/**
 * The registry client against real Distribution registries (Debian's
 * docker-registry), filled with skopeo from OCI layouts built here from real
 * files, with a real token server, htpasswd Basic auth, and HTTP proxies in
 * front to cut, tamper with and redirect traffic. Every client uses a fetch
 * that refuses non-loopback destinations.
 */

import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  AbortedError,
  AuthenticationError,
  DigestMismatchError,
  InvalidOptionError,
  ManifestNotFoundError,
  NoMatchingPlatformError,
  RegistryError,
  RegistryUnavailableError,
} from '../src/errors.js';
import { parseReference, type ImageReference } from '../src/image/reference.js';
import { parseAuthenticate } from '../src/image/registry/auth.js';
import { RegistryClient, type RegistryClientOptions } from '../src/image/registry/client.js';
import { authKeyHost, credentialsFromDockerConfig, InsecureRegistries } from '../src/image/registry/config.js';
import { MediaType, parseManifest, type ImageIndex } from '../src/image/registry/manifest.js';
import { currentPlatform, normalizePlatform, parsePlatform, selectManifest } from '../src/image/registry/platform.js';
import {
  type Blob,
  buildAttestation,
  buildImage,
  buildIndex,
  buildLayer,
  type BuiltImage,
  busyboxRootfs,
  descriptor,
  freePort,
  imageBlobs,
  loopbackOnlyFetch,
  type ProxyFixture,
  publish,
  type RegistryFixture,
  requireTools,
  skopeoRawManifest,
  startProxy,
  startRegistry,
} from './fixtures/registry.js';
import { startTokenServer, type TokenServerFixture } from './fixtures/token-server.js';

// --- shared state -------------------------------------------------------------

let work: string;
let open: RegistryFixture; // no auth
let secured: RegistryFixture; // token auth
let basic: RegistryFixture; // htpasswd auth
let tokens: TokenServerFixture;
const stops: Array<() => Promise<void>> = [];

let ociImage: BuiltImage; // 3 layers, OCI media types
let dockerImage: BuiltImage; // same layers, Docker schema2
let arm64Image: BuiltImage;
let armv7Image: BuiltImage;
let ociIndex: Blob; // amd64 + arm64/v8 + attestation
let dockerList: Blob; // amd64 + arm64 (no variant) + arm/v7
let attestation: ReturnType<typeof buildAttestation>;

const ALICE = { username: 'alice', password: 'wonderland' };

function client(options: RegistryClientOptions = {}): RegistryClient {
  return new RegistryClient({ fetch: loopbackOnlyFetch(), dockerConfigPath: false, ...options });
}

function ref(s: string): ImageReference {
  return parseReference(s);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}


beforeAll(async () => {
  await requireTools();
  work = mkdtempSync(join(tmpdir(), 'dockless-registry-test-'));
  stops.push(async () => rmSync(work, { recursive: true, force: true }));

  tokens = await startTokenServer({ users: { alice: ALICE.password } });
  stops.push(() => tokens.stop());
  open = await startRegistry();
  stops.push(() => open.stop());
  secured = await startRegistry({
    token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath },
  });
  stops.push(() => secured.stop());
  basic = await startRegistry({ users: { bob: 'builder' } });
  stops.push(() => basic.stop());

  const base = await buildLayer(work, 'busybox', busyboxRootfs, false);
  const hello = await buildLayer(work, 'hello', (root) => {
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/hello'), 'hello from layer 2\n');
  }, false);
  const third = await buildLayer(work, 'third', (root) => {
    mkdirSync(join(root, 'srv'));
    writeFileSync(join(root, 'srv/data.bin'), createHash('sha512').update('x').digest());
  }, false);
  const dockerLayers = [base, hello, third].map((l) => ({
    ...l,
    layer: { ...l.layer, mediaType: MediaType.DockerLayerGzip },
  }));
  ociImage = buildImage([base, hello, third], { os: 'linux', architecture: 'amd64' }, false);
  dockerImage = buildImage(dockerLayers, { os: 'linux', architecture: 'amd64' }, true);
  const armFile = (arch: string) => buildLayer(work, `arch-${arch}`, (root) => writeFileSync(join(root, 'ARCH'), arch), true);
  arm64Image = buildImage([await armFile('arm64')], { os: 'linux', architecture: 'arm64', variant: 'v8' }, false);
  armv7Image = buildImage([await armFile('armv7')], { os: 'linux', architecture: 'arm', variant: 'v7' }, true);
  attestation = buildAttestation(ociImage.manifest);
  ociIndex = buildIndex([
    descriptor(ociImage.manifest, { platform: ociImage.platform }),
    descriptor(arm64Image.manifest, { platform: arm64Image.platform }),
    attestation.entry,
  ], false);
  const arm64NoVariant = buildImage(
    [{ layer: arm64Image.layers[0]!, diffId: arm64Image.diffIds[0]! }].map((l) => ({ ...l, layer: { ...l.layer, mediaType: MediaType.DockerLayerGzip } })),
    { os: 'linux', architecture: 'arm64' },
    true,
  );
  dockerList = buildIndex([
    descriptor(dockerImage.manifest, { platform: dockerImage.platform }),
    descriptor(arm64NoVariant.manifest, { platform: arm64NoVariant.platform }),
    descriptor(armv7Image.manifest, { platform: armv7Image.platform }),
  ], true);

  await publish(work, open, ociImage.manifest, imageBlobs(ociImage), 'test/single:oci');
  await publish(work, open, dockerImage.manifest, imageBlobs(dockerImage), 'test/single:docker');
  await publish(work, open, ociIndex, [...imageBlobs(ociImage), ...imageBlobs(arm64Image), ...attestation.blobs, attestation.manifest], 'test/multi:oci');
  await publish(work, open, dockerList, [...imageBlobs(dockerImage), ...imageBlobs(arm64NoVariant), ...imageBlobs(armv7Image)], 'test/multi:docker');
  await publish(work, secured, ociImage.manifest, imageBlobs(ociImage), 'private/app:1', `alice:${ALICE.password}`);
  await publish(work, basic, dockerImage.manifest, imageBlobs(dockerImage), 'team/app:1', 'bob:builder');
}, 120_000);

afterAll(async () => {
  const errors: unknown[] = [];
  for (const stop of stops.reverse()) {
    try {
      await stop();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length) throw errors[0];
});

// --- pure pieces -------------------------------------------------------------

describe('WWW-Authenticate parsing', () => {
  it('reads Bearer and Basic challenges with quoted and bare values', () => {
    expect(parseAuthenticate('Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a/b:pull,push"')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'reg.example', scope: 'repository:a/b:pull,push' } },
    ]);
    expect(parseAuthenticate('Basic realm="x y", Bearer realm=https://t/token, error="insufficient_scope"')).toEqual([
      { scheme: 'basic', params: { realm: 'x y' } },
      { scheme: 'bearer', params: { realm: 'https://t/token', error: 'insufficient_scope' } },
    ]);
    expect(parseAuthenticate('Basic realm="a\\"b"')).toEqual([{ scheme: 'basic', params: { realm: 'a"b' } }]);
  });
});

describe('platforms', () => {
  const entry = (architecture: string, variant?: string, extra: Record<string, unknown> = {}) => ({
    mediaType: MediaType.OciManifest,
    digest: `sha256:${createHash('sha256').update(`${architecture}${variant}`).digest('hex')}`,
    size: 1,
    platform: { os: 'linux', architecture, ...(variant ? { variant } : {}) },
    ...extra,
  });
  const index = (...manifests: ReturnType<typeof entry>[]): ImageIndex => ({ schemaVersion: 2, manifests });

  it('normalizes names like containerd', () => {
    expect(parsePlatform('linux/aarch64/8')).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(parsePlatform('linux/x86_64')).toEqual({ os: 'linux', architecture: 'amd64' });
    expect(parsePlatform('linux/armhf')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(parsePlatform('linux/arm')).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(normalizePlatform({ os: 'Linux', architecture: 'ARM64', variant: 'v8' })).toEqual({ os: 'linux', architecture: 'arm64' });
    expect(() => parsePlatform('linux//amd64')).toThrow(InvalidOptionError);
    expect(currentPlatform().os).toBe('linux');
  });

  it('chooses the best variant, newest first, and never an attestation', () => {
    const amd = entry('amd64');
    const arm64 = entry('arm64');
    const arm64v8 = entry('arm64', 'v8');
    const v6 = entry('arm', 'v6');
    const v7 = entry('arm', 'v7');
    const v5 = entry('arm', 'v5');
    const att = entry('unknown', undefined, { platform: { os: 'unknown', architecture: 'unknown' } });
    expect(selectManifest(index(att, amd, arm64), { os: 'linux', architecture: 'amd64' }, 'x')).toBe(amd);
    // arm64/v8 and plain arm64 are the same platform; the first in the index wins.
    expect(selectManifest(index(arm64, arm64v8), parsePlatform('linux/arm64/v8'), 'x')).toBe(arm64);
    expect(selectManifest(index(arm64v8), parsePlatform('linux/arm64'), 'x')).toBe(arm64v8);
    // An armv7 host runs v6 and v5 images, preferring v6; an armv6 host does not run v7.
    expect(selectManifest(index(v5, v6), parsePlatform('linux/arm/v7'), 'x')).toBe(v6);
    expect(selectManifest(index(v5, v7, v6), parsePlatform('linux/arm/v7'), 'x')).toBe(v7);
    expect(() => selectManifest(index(v7), parsePlatform('linux/arm/v6'), 'x')).toThrow(NoMatchingPlatformError);
    // amd64 v3 hosts run v2 and plain amd64 images.
    expect(selectManifest(index(amd, entry('amd64', 'v2')), parsePlatform('linux/amd64/v3'), 'x').platform?.variant).toBe('v2');
    const err = (() => {
      try {
        selectManifest(index(amd, att, arm64), parsePlatform('linux/s390x'), 'img:1');
      } catch (e) {
        return e as NoMatchingPlatformError;
      }
    })();
    expect(err).toBeInstanceOf(NoMatchingPlatformError);
    expect(err!.available).toEqual(['linux/amd64', 'linux/arm64']);
    expect(err!.message).toMatch(/img:1.*no matching manifest for linux\/s390x/);
  });
});

describe('docker config and insecure registries', () => {
  it('finds credentials under any spelling of the registry key', async () => {
    const auth = Buffer.from('u:p:with:colons').toString('base64');
    const config = {
      auths: {
        'https://index.docker.io/v1/': { auth },
        'http://127.0.0.1:5000/v2/': { username: 'a', password: 'b' },
        'ghcr.io': { identitytoken: 'refresh' },
      },
    };
    expect(await credentialsFromDockerConfig(config, 'docker.io')).toEqual({ username: 'u', password: 'p:with:colons' });
    expect(await credentialsFromDockerConfig(config, '127.0.0.1:5000')).toEqual({ username: 'a', password: 'b' });
    expect(await credentialsFromDockerConfig(config, 'ghcr.io')).toEqual({ identityToken: 'refresh' });
    expect(await credentialsFromDockerConfig(config, 'quay.io')).toBeUndefined();
    expect(authKeyHost('HTTPS://Reg.Example:443/v1/')).toBe('reg.example:443');
    await expect(credentialsFromDockerConfig({ auths: { x: { auth: Buffer.from('nocolon').toString('base64') } } }, 'x')).rejects.toThrow(InvalidOptionError);
  });

  it('treats loopback and listed hosts as insecure, nothing else', () => {
    const insecure = new InsecureRegistries(['reg.internal:5000', '10.1.0.0/16', 'fd00::/8']);
    expect(insecure.has('127.0.0.1:5000')).toBe(true);
    expect(insecure.has('127.9.9.9')).toBe(true);
    expect(insecure.has('[::1]:5000')).toBe(true);
    expect(insecure.has('localhost:5000')).toBe(true);
    expect(insecure.has('reg.internal:5000')).toBe(true);
    expect(insecure.has('reg.internal:5001')).toBe(false);
    expect(insecure.has('10.1.2.3:443')).toBe(true);
    expect(insecure.has('10.2.0.1')).toBe(false);
    expect(insecure.has('[fd00::1]:5000')).toBe(true);
    expect(insecure.has('docker.io')).toBe(false);
    expect(() => new InsecureRegistries(['10.0.0.0/33'])).toThrow(InvalidOptionError);
    expect(() => new InsecureRegistries(['bad host'])).toThrow(InvalidOptionError);
  });
});

// --- pulling ------------------------------------------------------------------

describe('pull from an open registry', () => {
  it('resolves an OCI manifest: digests, config and layers as built, bytes as skopeo reads them', async () => {
    const c = client();
    const r = ref(`${open.host}/test/single:oci`);
    const image = await c.resolve(r);
    expect(image.index).toBeUndefined();
    expect(image.digest).toBe(ociImage.manifest.digest);
    expect(image.manifestDigest).toBe(ociImage.manifest.digest);
    expect(image.manifestMediaType).toBe(MediaType.OciManifest);
    expect(image.manifestBytes.equals(await skopeoRawManifest(open.host, 'test/single:oci'))).toBe(true);
    expect(image.configDigest).toBe(ociImage.config.digest);
    expect(image.configBytes.equals(ociImage.config.bytes)).toBe(true);
    expect(image.config.rootfs.diff_ids).toEqual(ociImage.diffIds);
    expect(image.layers.map((l) => l.digest)).toEqual(ociImage.layers.map((l) => l.digest));
    expect(image.platform).toEqual({ os: 'linux', architecture: 'amd64' });
  });

  it('resolves a Docker schema2 manifest', async () => {
    const image = await client().resolve(ref(`${open.host}/test/single:docker`));
    expect(image.manifestMediaType).toBe(MediaType.DockerManifest);
    expect(image.manifestDigest).toBe(dockerImage.manifest.digest);
    expect(image.layers.every((l) => l.mediaType === MediaType.DockerLayerGzip)).toBe(true);
    expect(image.configBytes.equals(dockerImage.config.bytes)).toBe(true);
  });

  it('resolves an OCI index for amd64 and arm64, skipping the attestation', async () => {
    const c = client();
    const r = ref(`${open.host}/test/multi:oci`);
    const amd = await c.resolve(r, { platform: 'linux/amd64' });
    expect(amd.digest).toBe(ociIndex.digest);
    expect(amd.index?.mediaType).toBe(MediaType.OciIndex);
    expect(amd.index?.bytes.equals(ociIndex.bytes)).toBe(true);
    expect(amd.manifestDigest).toBe(ociImage.manifest.digest);
    const arm = await c.resolve(r, { platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } });
    expect(arm.manifestDigest).toBe(arm64Image.manifest.digest);
    expect(arm.platform).toEqual({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    expect(await c.resolve(r, { platform: 'linux/aarch64' }).then((i) => i.manifestDigest)).toBe(arm64Image.manifest.digest);
    const none = await caught(c.resolve(r, { platform: { os: 'unknown', architecture: 'unknown' } }));
    expect(none).toBeInstanceOf(NoMatchingPlatformError);
    expect((none as NoMatchingPlatformError).available).toEqual(['linux/amd64', 'linux/arm64']);
  });

  it('resolves a Docker manifest list: arm64/v8 falls back to plain arm64, the default is this process', async () => {
    const c = client();
    const r = ref(`${open.host}/test/multi:docker`);
    const mine = currentPlatform();
    const expected = { amd64: dockerImage.manifest.digest, arm64: undefined }[mine.architecture as 'amd64'];
    if (expected) expect((await c.resolve(r)).manifestDigest).toBe(expected);
    const arm64 = await c.resolve(r, { platform: 'linux/arm64/v8' });
    expect(arm64.index?.mediaType).toBe(MediaType.DockerManifestList);
    expect(arm64.manifestMediaType).toBe(MediaType.DockerManifest);
    expect(arm64.platform).toEqual({ os: 'linux', architecture: 'arm64' });
    expect((await c.resolve(r, { platform: 'linux/arm/v7' })).manifestDigest).toBe(armv7Image.manifest.digest);
    expect(await caught(c.resolve(r, { platform: 'linux/arm/v6' }))).toBeInstanceOf(NoMatchingPlatformError);
    // By digest: the index digest resolves the same way.
    const byDigest = await c.resolve({ ...r, tag: undefined, digest: dockerList.digest }, { platform: 'linux/arm/v7' });
    expect(byDigest.manifestDigest).toBe(armv7Image.manifest.digest);
  });

  it('streams every layer verified, reporting progress up to the size', async () => {
    const c = client();
    const r = ref(`${open.host}/test/single:oci`);
    const image = await c.resolve(r);
    for (const [i, layer] of image.layers.entries()) {
      const progress: number[] = [];
      const stream = await c.fetchBlob(r, layer, { onProgress: (done, total) => {
        expect(total).toBe(layer.size);
        progress.push(done);
      } });
      expect((await readAll(stream)).equals(ociImage.layers[i]!.bytes)).toBe(true);
      expect(progress.at(-1)).toBe(layer.size);
      expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    }
    expect((await c.fetchBlobBytes(r, image.manifest.config)).equals(ociImage.config.bytes)).toBe(true);
  });

  it('continues a partial download from an offset with the caller’s hash', async () => {
    const c = client();
    const r = ref(`${open.host}/test/single:oci`);
    const layer = ociImage.layers[0]!;
    const offset = 300_000;
    const hash = createHash('sha256').update(layer.bytes.subarray(0, offset));
    const rest = await readAll(await c.fetchBlob(r, descriptor(layer) as never, { offset, hash }));
    expect(rest.equals(layer.bytes.subarray(offset))).toBe(true);
    // A wrong prefix hash is caught at the end.
    const wrong = createHash('sha256').update(Buffer.alloc(offset));
    expect(await caught(readAll(await c.fetchBlob(r, descriptor(layer) as never, { offset, hash: wrong })))).toBeInstanceOf(DigestMismatchError);
    await expect(c.fetchBlob(r, descriptor(layer) as never, { offset })).rejects.toThrow(InvalidOptionError);
  });

  it('lists tags', async () => {
    expect((await client().listTags(ref(`${open.host}/test/multi`))).sort()).toEqual(['docker', 'oci']);
  });

  it('names what is missing: unknown tag, repository, digest, blob', async () => {
    const c = client();
    const tag = await caught(c.resolve(ref(`${open.host}/test/single:nope`)));
    expect(tag).toBeInstanceOf(ManifestNotFoundError);
    expect((tag as ManifestNotFoundError).message).toContain(`${open.host}/test/single:nope`);
    expect((tag as ManifestNotFoundError).registryCode).toBe('MANIFEST_UNKNOWN');
    const repo = await caught(c.resolve(ref(`${open.host}/no/such:1`)));
    expect(repo).toBeInstanceOf(ManifestNotFoundError);
    expect((repo as ManifestNotFoundError).registryCode).toMatch(/^(NAME|MANIFEST)_UNKNOWN$/);
    const digest = `sha256:${'0'.repeat(64)}`;
    expect(await caught(c.fetchManifest(ref(`${open.host}/test/single@${digest}`)))).toBeInstanceOf(ManifestNotFoundError);
    const blob = await caught(c.fetchBlob(ref(`${open.host}/test/single`), { mediaType: MediaType.OciLayerGzip, digest, size: 10 }));
    expect(blob).toBeInstanceOf(RegistryError);
    expect((blob as RegistryError).status).toBe(404);
    expect((blob as RegistryError).registryCode).toBe('BLOB_UNKNOWN');
    expect(await c.blobExists(ref(`${open.host}/test/single`), digest)).toBe(false);
    expect(await c.blobExists(ref(`${open.host}/test/single`), ociImage.layers[0]!.digest)).toBe(true);
  });

  it('says the registry is down when nothing listens', async () => {
    const port = await freePort();
    const down = await caught(client().resolve(ref(`127.0.0.1:${port}/a/b:1`)));
    expect(down).toBeInstanceOf(RegistryUnavailableError);
    expect((down as RegistryUnavailableError).registry).toBe(`127.0.0.1:${port}`);
    expect((down as Error).message).toMatch(/ECONNREFUSED/);
    // A registry that goes away between two calls.
    const gone = await startRegistry();
    const c = client();
    await c.ping(gone.host);
    await gone.stop();
    expect(await caught(c.resolve(ref(`${gone.host}/a/b:1`)))).toBeInstanceOf(RegistryUnavailableError);
  });

  it('never speaks plain HTTP to a registry that is not insecure', async () => {
    const seen: string[] = [];
    const c = new RegistryClient({
      dockerConfigPath: false,
      endpoints: {},
      fetch: (input, init) => {
        seen.push(String(input));
        return Promise.reject(new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }));
      },
    });
    expect(await caught(c.resolve(ref('registry.invalid/a:1')))).toBeInstanceOf(RegistryUnavailableError);
    expect(seen).toEqual(['https://registry.invalid/v2/a/manifests/1']);
  });
});

// --- tampering, cuts, redirects ---------------------------------------------------

describe('through a proxy', () => {
  let proxy: ProxyFixture;
  beforeAll(async () => {
    proxy = await startProxy(open.host);
    stops.push(() => proxy.stop());
  });
  afterEach(() => {
    proxy.handler = () => ({ kind: 'pass' });
    proxy.requests.length = 0;
  });
  const isBlob = (req: http.IncomingMessage) => req.method === 'GET' && /\/blobs\/sha256:/.test(req.url!);
  const flip = (b: Buffer) => {
    const copy = Buffer.from(b);
    copy[copy.length >> 1]! ^= 0xff;
    return copy;
  };

  it('refuses a manifest that does not match the digest the registry announced', async () => {
    proxy.handler = (req) => (/manifests\/oci$/.test(req.url!) ? { kind: 'transform', body: (b) => Buffer.concat([b, Buffer.from(' ')]) } : { kind: 'pass' });
    const err = await caught(client().resolve(ref(`${proxy.host}/test/single:oci`)));
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as DigestMismatchError).expected).toBe(ociImage.manifest.digest);
  });

  it('refuses a platform manifest that does not match its digest in the index', async () => {
    proxy.handler = (req) => (req.url!.endsWith(ociImage.manifest.digest) ? { kind: 'transform', body: flip } : { kind: 'pass' });
    const err = await caught(client().resolve(ref(`${proxy.host}/test/multi:oci`), { platform: 'linux/amd64' }));
    expect(err).toBeInstanceOf(DigestMismatchError);
  });

  it('refuses a config that does not match its digest', async () => {
    proxy.handler = (req) => (req.url!.endsWith(ociImage.config.digest) ? { kind: 'transform', body: flip } : { kind: 'pass' });
    expect(await caught(client().resolve(ref(`${proxy.host}/test/single:oci`)))).toBeInstanceOf(DigestMismatchError);
  });

  it('fails a tampered blob stream instead of ending it', async () => {
    proxy.handler = (req) => (isBlob(req) ? { kind: 'transform', body: flip } : { kind: 'pass' });
    const layer = ociImage.layers[1]!;
    const stream = await client().fetchBlob(ref(`${proxy.host}/test/single`), descriptor(layer) as never);
    let ended = false;
    stream.on('end', () => (ended = true));
    const err = await caught(readAll(stream));
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as DigestMismatchError).expected).toBe(layer.digest);
    expect(ended).toBe(false);
  });

  it('resumes a blob cut mid-stream with a Range request and verifies the whole', async () => {
    const layer = ociImage.layers[0]!;
    const cutAt = 200_000;
    let cuts = 0;
    proxy.handler = (req) => (isBlob(req) && cuts++ === 0 ? { kind: 'cut', after: cutAt } : { kind: 'pass' });
    const stream = await client().fetchBlob(ref(`${proxy.host}/test/single`), descriptor(layer) as never);
    expect((await readAll(stream)).equals(layer.bytes)).toBe(true);
    const blobRequests = proxy.requests.filter((r) => r.url.includes('/blobs/'));
    expect(blobRequests).toHaveLength(2);
    expect(blobRequests[0]!.headers.range).toBeUndefined();
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(String(blobRequests[1]!.headers.range))?.[1]);
    expect(resumedAt).toBeGreaterThan(0);
    expect(resumedAt).toBeLessThanOrEqual(cutAt);
    expect(blobRequests[1]!.status).toBe(206);
  });

  it('resumes from a server that ignores Range by skipping what it already has', async () => {
    const layer = ociImage.layers[0]!;
    let cuts = 0;
    proxy.handler = (req) => {
      if (!isBlob(req)) return { kind: 'pass' };
      if (cuts++ === 0) return { kind: 'cut', after: 150_000 };
      delete req.headers.range;
      return { kind: 'pass' };
    };
    const stream = await client().fetchBlob(ref(`${proxy.host}/test/single`), descriptor(layer) as never);
    expect((await readAll(stream)).equals(layer.bytes)).toBe(true);
    expect(proxy.requests.filter((r) => r.url.includes('/blobs/')).map((r) => r.status)).toEqual([200, 200]);
  });

  it('gives up after the bounded number of resumes', async () => {
    proxy.handler = (req) => (isBlob(req) ? { kind: 'cut', after: 1000 } : { kind: 'pass' });
    const layer = ociImage.layers[0]!;
    const stream = await client({ maxBlobRetries: 2 }).fetchBlob(ref(`${proxy.host}/test/single`), descriptor(layer) as never);
    const err = await caught(readAll(stream));
    expect(err).toBeInstanceOf(RegistryError);
    expect((err as Error).message).toMatch(/could not be resumed \(2 attempts\)/);
    expect(proxy.requests.filter((r) => r.url.includes('/blobs/'))).toHaveLength(3);
  });

  it('cancels cleanly on abort, before and during the download', async () => {
    const layer = ociImage.layers[0]!;
    const r = ref(`${proxy.host}/test/single`);
    const c = client();
    const before = new AbortController();
    before.abort();
    expect(await caught(c.fetchBlob(r, descriptor(layer) as never, { signal: before.signal }))).toBeInstanceOf(AbortedError);
    expect(await caught(c.resolve(ref(`${proxy.host}/test/single:oci`), { signal: before.signal }))).toBeInstanceOf(AbortedError);
    const during = new AbortController();
    let got = 0;
    const stream = await c.fetchBlob(r, descriptor(layer) as never, {
      signal: during.signal,
      onProgress: (done) => {
        got = done;
        if (done > 0) during.abort();
      },
    });
    const err = await caught(readAll(stream));
    expect(err).toBeInstanceOf(AbortedError);
    expect(got).toBeLessThan(layer.size);
    expect(stream.destroyed).toBe(true);
  });
});

// --- authentication -------------------------------------------------------------

describe('token authentication', () => {
  beforeEach(() => {
    tokens.requests.length = 0;
  });
  afterEach(() => {
    tokens.options.expiresIn = undefined;
    tokens.options.expOffset = undefined;
    tokens.options.refreshTokens = undefined;
    tokens.requests.length = 0;
  });
  const image = () => ref(`${secured.host}/private/app:1`);

  it('answers 401 with a token for the scope, and reuses it', async () => {
    const c = client({ auth: { [secured.host]: ALICE } });
    const resolved = await c.resolve(image());
    expect(resolved.manifestDigest).toBe(ociImage.manifest.digest);
    expect(tokens.requests).toHaveLength(1);
    expect(tokens.requests[0]).toMatchObject({ user: 'alice', scopes: ['repository:private/app:pull'], service: tokens.service, status: 200 });
    const layer = await readAll(await c.fetchBlob(image(), resolved.layers[1]!));
    expect(layer.equals(ociImage.layers[1]!.bytes)).toBe(true);
    await c.resolve(image());
    expect(tokens.requests).toHaveLength(1);
  });

  it('fetches a new token when the cached one expires', async () => {
    tokens.options.expiresIn = 1;
    const c = client({ auth: { [secured.host]: ALICE } });
    await c.resolve(image());
    await c.resolve(image());
    expect(tokens.requests).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1200));
    await c.resolve(image());
    expect(tokens.requests).toHaveLength(2);
  });

  it('replaces a cached token the registry refuses', async () => {
    // Tokens the registry accepts for a second or two (it allows 60 s of clock
    // skew past exp) while the client is told they last 300 s.
    tokens.options.expOffset = -58;
    const c = client({ auth: { [secured.host]: ALICE } });
    await c.resolve(image());
    expect(tokens.requests).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 2500));
    await c.resolve(image());
    expect(tokens.requests).toHaveLength(2);
  });

  it('fails with AuthenticationError for a wrong password and without credentials', async () => {
    const wrong = await caught(client({ auth: { [secured.host]: { username: 'alice', password: 'nope' } } }).resolve(image()));
    expect(wrong).toBeInstanceOf(AuthenticationError);
    expect((wrong as AuthenticationError).code).toBe('ERR_REGISTRY_AUTH');
    expect((wrong as Error).message).toMatch(/refused the credentials of user "alice"/);
    const anonymous = await caught(client().resolve(image()));
    expect(anonymous).toBeInstanceOf(AuthenticationError);
    expect((anonymous as Error).message).toMatch(/access denied/);
  });

  it('takes credentials from $DOCKER_CONFIG/config.json: auth, identity token, credential helper', async () => {
    const dir = join(work, 'docker-config');
    mkdirSync(dir, { recursive: true });
    const saved = { DOCKER_CONFIG: process.env.DOCKER_CONFIG, PATH: process.env.PATH };
    try {
      process.env.DOCKER_CONFIG = dir;
      writeFileSync(join(dir, 'config.json'), JSON.stringify({
        auths: { [`http://${secured.host}/v2/`]: { auth: Buffer.from(`alice:${ALICE.password}`).toString('base64') } },
      }));
      const fromAuth = new RegistryClient({ fetch: loopbackOnlyFetch() });
      expect((await fromAuth.resolve(image())).manifestDigest).toBe(ociImage.manifest.digest);
      expect(tokens.requests.at(-1)).toMatchObject({ method: 'GET', user: 'alice' });

      tokens.options.refreshTokens = { 'refresh-abc': 'alice' };
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [secured.host]: { identitytoken: 'refresh-abc' } } }));
      await new RegistryClient({ fetch: loopbackOnlyFetch() }).resolve(image());
      expect(tokens.requests.at(-1)).toMatchObject({ method: 'POST', user: 'alice', scopes: ['repository:private/app:pull'] });

      const bin = join(dir, 'bin');
      mkdirSync(bin);
      writeFileSync(join(bin, 'docker-credential-dltest'), [
        '#!/bin/sh',
        'read server',
        `if [ "$server" = "${secured.host}" ]; then echo '{"ServerURL":"'$server'","Username":"alice","Secret":"${ALICE.password}"}'; exit 0; fi`,
        'echo "credentials not found in native keychain"; exit 1',
      ].join('\n'));
      chmodSync(join(bin, 'docker-credential-dltest'), 0o755);
      process.env.PATH = `${bin}:${saved.PATH}`;
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ credHelpers: { [secured.host]: 'dltest' } }));
      await new RegistryClient({ fetch: loopbackOnlyFetch() }).resolve(image());
      expect(tokens.requests.at(-1)).toMatchObject({ method: 'GET', user: 'alice' });
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('never sends Authorization to another host a blob redirects to', async () => {
    const seenByOther: http.IncomingHttpHeaders[] = [];
    const other = http.createServer((req, res) => {
      seenByOther.push(req.headers);
      const digest = req.url!.split('/').pop()!;
      const blob = [...ociImage.layers, ociImage.config].find((l) => l.digest === digest);
      if (!blob) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-length': String(blob.size) }).end(blob.bytes);
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.2', resolve));
    const proxy = await startProxy(secured.host);
    try {
      const storage = `http://127.0.0.2:${(other.address() as AddressInfo).port}`;
      proxy.handler = (req) =>
        req.method === 'GET' && req.url!.includes('/blobs/')
          ? { kind: 'respond', status: 307, headers: { location: `${storage}/storage/${req.url!.split('/').pop()}` } }
          : { kind: 'pass' };
      const c = client({ auth: { [proxy.host]: ALICE } });
      const r = ref(`${proxy.host}/private/app:1`);
      const image = await c.resolve(r);
      const layer = await readAll(await c.fetchBlob(r, image.layers[2]!));
      expect(layer.equals(ociImage.layers[2]!.bytes)).toBe(true);
      const toRegistry = proxy.requests.filter((q) => q.url.includes('/blobs/'));
      expect(toRegistry.length).toBeGreaterThan(0);
      expect(toRegistry.every((q) => String(q.headers.authorization).startsWith('Bearer '))).toBe(true);
      expect(seenByOther.length).toBe(2); // the config blob and the layer
      expect(seenByOther.every((h) => h.authorization === undefined)).toBe(true);
    } finally {
      await proxy.stop();
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });
});

describe('Basic authentication (htpasswd)', () => {
  it('sends the credentials after the challenge and then up front', async () => {
    const proxy = await startProxy(basic.host);
    try {
      const c = client({ auth: { [proxy.host]: { username: 'bob', password: 'builder' } } });
      const r = ref(`${proxy.host}/team/app:1`);
      const image = await c.resolve(r);
      expect(image.manifestDigest).toBe(dockerImage.manifest.digest);
      const statuses = proxy.requests.map((q) => q.status);
      expect(statuses[0]).toBe(401);
      expect(statuses.slice(1).every((s) => s === 200)).toBe(true);
      expect(proxy.requests.slice(1).every((q) => q.headers.authorization?.startsWith('Basic '))).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  it('fails with AuthenticationError for wrong or missing credentials', async () => {
    const r = ref(`${basic.host}/team/app:1`);
    const wrong = await caught(client({ auth: { [basic.host]: { username: 'bob', password: 'x' } } }).resolve(r));
    expect(wrong).toBeInstanceOf(AuthenticationError);
    expect((wrong as Error).message).toMatch(/refused the credentials of user "bob"/);
    const none = await caught(client().resolve(r));
    expect(none).toBeInstanceOf(AuthenticationError);
    expect((none as Error).message).toMatch(/no credentials/);
  });
});

// --- pushing ----------------------------------------------------------------------

describe('push', () => {
  it('pushes blobs and a manifest that pull back byte for byte (and skopeo agrees)', async () => {
    const c = client();
    const r = ref(`${open.host}/pushed/img:v1`);
    const progress: number[] = [];
    const results = [];
    for (const blob of [...dockerImage.layers, dockerImage.config]) {
      results.push(await c.pushBlob(r, blob, () => Readable.from([blob.bytes.subarray(0, 1000), blob.bytes.subarray(1000)]), {
        onProgress: (done) => progress.push(done),
      }));
    }
    expect(results.map((x) => x.status)).toEqual(['uploaded', 'uploaded', 'uploaded', 'uploaded']);
    expect(progress.at(-1)).toBe(dockerImage.config.size);
    const digest = await c.pushManifest(r, dockerImage.manifest.bytes, MediaType.DockerManifest);
    expect(digest).toBe(dockerImage.manifest.digest);
    const back = await c.resolve(r);
    expect(back.manifestBytes.equals(dockerImage.manifest.bytes)).toBe(true);
    expect(back.configBytes.equals(dockerImage.config.bytes)).toBe(true);
    expect((await readAll(await c.fetchBlob(r, back.layers[0]!))).equals(dockerImage.layers[0]!.bytes)).toBe(true);
    expect((await skopeoRawManifest(open.host, 'pushed/img:v1')).equals(dockerImage.manifest.bytes)).toBe(true);
    // Pushing again finds everything there.
    expect((await c.pushBlob(r, dockerImage.config, () => { throw new Error('must not be read'); })).status).toBe('exists');
  });

  it('uploads in chunks', async () => {
    const c = client();
    const r = ref(`${open.host}/pushed/chunked:1`);
    const layer = ociImage.layers[0]!;
    const result = await c.pushBlob(r, layer, () => layer.bytes, { chunkSize: 256 * 1024 });
    expect(result.status).toBe('uploaded');
    expect((await readAll(await c.fetchBlob(r, descriptor(layer) as never))).equals(layer.bytes)).toBe(true);
  });

  it('mounts a blob from another repository instead of uploading it', async () => {
    const c = client();
    const layer = ociImage.layers[2]!;
    let reads = 0;
    const source = () => {
      reads++;
      return layer.bytes;
    };
    expect((await c.pushBlob(ref(`${open.host}/mount/source`), layer, source)).status).toBe('uploaded');
    const target = ref(`${open.host}/mount/target`);
    expect(await c.blobExists(target, layer.digest)).toBe(false);
    expect((await c.pushBlob(target, layer, source, { mountFrom: 'mount/source' })).status).toBe('mounted');
    expect(reads).toBe(1);
    expect(await c.blobExists(target, layer.digest)).toBe(true);
    // A source repository without the blob: the registry starts an upload instead.
    const other = ociImage.layers[1]!;
    expect((await c.pushBlob(target, other, () => other.bytes, { mountFrom: ref(`${open.host}/mount/empty`) })).status).toBe('uploaded');
  });

  it('refuses data that does not match the digest, and commits nothing', async () => {
    const c = client();
    const r = ref(`${open.host}/pushed/bad`);
    const layer = ociImage.layers[1]!;
    const tampered = Buffer.from(layer.bytes);
    tampered[10]! ^= 1;
    expect(await caught(c.pushBlob(r, layer, () => tampered))).toBeInstanceOf(DigestMismatchError);
    expect(await caught(c.pushBlob(r, layer, () => tampered, { chunkSize: 1000 }))).toBeInstanceOf(DigestMismatchError);
    expect(await caught(c.pushBlob(r, layer, () => layer.bytes.subarray(1)))).toBeInstanceOf(InvalidOptionError);
    expect(await c.blobExists(r, layer.digest)).toBe(false);
  });

  it('pushes an index by digest and refuses bytes that do not match the reference digest', async () => {
    const c = client();
    const repo = `${open.host}/pushed/multi`;
    for (const blob of [...imageBlobs(ociImage), ...imageBlobs(arm64Image)]) {
      if (blob === ociImage.manifest || blob === arm64Image.manifest) continue;
      await c.pushBlob(ref(repo), blob, () => blob.bytes);
    }
    await c.pushManifest(ref(`${repo}@${ociImage.manifest.digest}`), ociImage.manifest.bytes, MediaType.OciManifest);
    await c.pushManifest(ref(`${repo}@${arm64Image.manifest.digest}`), arm64Image.manifest.bytes, MediaType.OciManifest);
    const index = buildIndex([
      descriptor(ociImage.manifest, { platform: ociImage.platform }),
      descriptor(arm64Image.manifest, { platform: arm64Image.platform }),
    ], false);
    expect(await c.pushManifest(ref(`${repo}@${index.digest}`), index.bytes, MediaType.OciIndex)).toBe(index.digest);
    const arm = await c.resolve(ref(`${repo}@${index.digest}`), { platform: 'linux/arm64' });
    expect(arm.manifestDigest).toBe(arm64Image.manifest.digest);
    expect(await caught(c.pushManifest(ref(`${repo}@${ociImage.manifest.digest}`), index.bytes, MediaType.OciIndex))).toBeInstanceOf(DigestMismatchError);
    expect(await caught(c.pushManifest(ref(`${repo}:x`), index.bytes, MediaType.DockerManifest))).toBeInstanceOf(InvalidOptionError);
    expect(parseManifest(index.bytes).kind).toBe('index');
  });

  it('pushes through token auth with a push scope; anonymous pushes are refused', async () => {
    const c = client({ auth: { [secured.host]: ALICE } });
    const r = ref(`${secured.host}/private/pushed:1`);
    const layer = ociImage.layers[1]!;
    expect((await c.pushBlob(r, layer, () => layer.bytes, { mountFrom: 'private/app' })).status).toBe('mounted');
    expect(tokens.requests.at(-1)?.scopes.sort()).toEqual(['repository:private/app:pull', 'repository:private/pushed:pull,push']);
    const anonymous = await caught(client().pushBlob(r, ociImage.layers[2]!, () => ociImage.layers[2]!.bytes));
    expect(anonymous).toBeInstanceOf(AuthenticationError);
  });
});

// --- mirrors ------------------------------------------------------------------------

describe('Docker Hub mirrors', () => {
  it('pulls docker.io images from the first mirror that has them, else from the hub', async () => {
    const mirror = await startRegistry();
    const hub = await startProxy(open.host);
    const mirrorProxy = await startProxy(mirror.host);
    try {
      await publish(work, mirror, ociImage.manifest, imageBlobs(ociImage), 'library/mirrored:1');
      await publish(work, open, dockerImage.manifest, imageBlobs(dockerImage), 'library/hubonly:1');
      const deadMirror = `http://127.0.0.1:${await freePort()}`;
      const c = client({ mirrors: [deadMirror, mirrorProxy.url], endpoints: { 'docker.io': hub.url } });

      const fromMirror = await c.resolve(ref('mirrored:1'));
      expect(fromMirror.manifestDigest).toBe(ociImage.manifest.digest);
      expect((await readAll(await c.fetchBlob(ref('mirrored:1'), fromMirror.layers[1]!))).equals(ociImage.layers[1]!.bytes)).toBe(true);
      expect(hub.requests).toHaveLength(0);
      expect(mirrorProxy.requests.length).toBeGreaterThan(0);

      const fromHub = await c.resolve(ref('docker.io/library/hubonly:1'));
      expect(fromHub.manifestDigest).toBe(dockerImage.manifest.digest);
      expect(hub.requests.length).toBeGreaterThan(0);

      // Pushes never go to mirrors, and other registries never use them.
      mirrorProxy.requests.length = 0;
      expect(await c.blobExists(ref('library/hubonly'), dockerImage.config.digest)).toBe(true);
      await c.resolve(ref(`${open.host}/test/single:oci`));
      expect(mirrorProxy.requests).toHaveLength(0);
    } finally {
      await mirrorProxy.stop();
      await hub.stop();
      await mirror.stop();
    }
  });
});
