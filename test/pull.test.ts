/**
 * Pulling images from real Distribution registries (Debian's docker-registry)
 * into an engine and running them. Images reach the registries through skopeo,
 * copied from OCI layouts and Docker `dir:` directories built here with tar(1)
 * from a busybox root filesystem: several layers, a whiteout, an opaque
 * directory, a hard link, and an index with two platforms. Failures (unknown
 * image or tag, wrong digest, tampered and truncated blobs, refused
 * credentials, a registry that is down, an abort) must be typed, leave nothing
 * in the store, and a retry must then succeed. Every engine's fetch refuses
 * anything but loopback.
 */

import { randomBytes } from 'node:crypto';
import { chmodSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { makeBusyboxRootfs } from '../examples/busybox-rootfs.js';
import {
  AbortedError,
  AuthenticationError,
  DigestMismatchError,
  Engine,
  ImageNotFoundError,
  InvalidOptionError,
  InvalidReferenceError,
  ManifestNotFoundError,
  NoMatchingPlatformError,
  RegistryError,
  RegistryUnavailableError,
  type PullProgress,
  type RegistryClientOptions,
} from '../src/index.js';
import { chainIds } from '../src/image/digest.js';
import { ImageStore } from '../src/image/store.js';
import { portableFsOps } from '../src/image/fsops.js';
import { MediaType } from '../src/image/registry/manifest.js';
import { currentPlatform, formatPlatform } from '../src/image/registry/platform.js';
import {
  type Blob,
  buildImage,
  buildIndex,
  buildLayer,
  type BuiltImage,
  descriptor,
  freePort,
  imageBlobs,
  loopbackOnlyFetch,
  type ProxyFixture,
  publish,
  type RegistryFixture,
  requireTools,
  startProxy,
  startRegistry,
} from './fixtures/registry.js';
import { startTokenServer, type TokenServerFixture } from './fixtures/token-server.js';
import { testRootPrefix } from './helpers/leaks.js';

const ALICE = { username: 'alice', password: 'wonderland' };
const PATH = '/bin:/sbin:/usr/bin:/usr/sbin';

let work: string;
let open: RegistryFixture;
let secured: RegistryFixture;
let tokens: TokenServerFixture;
const stops: Array<() => Promise<void>> = [];

type Layer = { layer: Blob; diffId: string };
let app: BuiltImage; // host platform: busybox + files + whiteouts/opaque + big layer
let appDocker: BuiltImage; // the same layers and config as Docker schema2
let other: BuiltImage; // the other platform of the index: one layer with /ARCH
let index: Blob;
let moving: { first: BuiltImage; second: BuiltImage };

const host = currentPlatform();
const otherPlatform = host.architecture === 'arm64' ? { os: 'linux', architecture: 'amd64' } : { os: 'linux', architecture: 'arm64' };
const hostPlatform = { os: host.os, architecture: host.architecture, ...(host.variant ? { variant: host.variant } : {}) };


beforeAll(async () => {
  await requireTools();
  work = mkdtempSync(join(tmpdir(), 'dockless-pull-test-'));
  stops.push(async () => rmSync(work, { recursive: true, force: true }));
  tokens = await startTokenServer({ users: { alice: ALICE.password } });
  stops.push(() => tokens.stop());
  open = await startRegistry();
  stops.push(() => open.stop());
  secured = await startRegistry({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } });
  stops.push(() => secured.stop());

  const base = await buildLayer(work, 'base', (root) => makeBusyboxRootfs(root), false);
  const files = await buildLayer(work, 'files', (root) => {
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/motd'), 'from layer one\n');
    writeFileSync(join(root, 'etc/os-release'), 'NAME=overridden\n');
    mkdirSync(join(root, 'data/old'), { recursive: true });
    writeFileSync(join(root, 'data/old/a.txt'), 'a\n');
    writeFileSync(join(root, 'data/old/b.txt'), 'b\n');
    mkdirSync(join(root, 'tmp'));
    chmodSync(join(root, 'tmp'), 0o1777);
    writeFileSync(join(root, 'tmp/gone.txt'), 'deleted above\n');
    writeFileSync(join(root, 'tmp/kept.txt'), 'kept\n');
    mkdirSync(join(root, 'srv'));
    writeFileSync(join(root, 'srv/hard1'), 'one file, two names\n');
    linkSync(join(root, 'srv/hard1'), join(root, 'srv/hard2'));
  }, false);
  const deletes = await buildLayer(work, 'deletes', (root) => {
    mkdirSync(join(root, 'tmp'));
    chmodSync(join(root, 'tmp'), 0o1777);
    writeFileSync(join(root, 'tmp/.wh.gone.txt'), ''); // whiteout of a file
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/.wh.os-release'), ''); // whiteout of a file two layers down too
    mkdirSync(join(root, 'data/old'), { recursive: true });
    writeFileSync(join(root, 'data/old/.wh..wh..opq'), ''); // the directory replaced
    writeFileSync(join(root, 'data/old/new.txt'), 'new\n');
  }, false);
  const big = await buildLayer(work, 'big', (root) => {
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/motd'), 'from the top layer\n');
    mkdirSync(join(root, 'opt'));
    writeFileSync(join(root, 'opt/random.bin'), randomBytes(512 * 1024)); // incompressible: many chunks
  }, false);
  const layers: Layer[] = [base, files, deletes, big];
  app = buildImage(layers, hostPlatform, false);
  appDocker = buildImage(layers.map((l) => ({ ...l, layer: { ...l.layer, mediaType: MediaType.DockerLayerGzip } })), hostPlatform, true);
  other = buildImage([await buildLayer(work, 'other', (root) => writeFileSync(join(root, 'ARCH'), otherPlatform.architecture), false)], otherPlatform, false);
  index = buildIndex([descriptor(app.manifest, { platform: app.platform }), descriptor(other.manifest, { platform: other.platform })], false);
  const marker = (text: string) => buildLayer(work, `marker-${text}`, (root) => {
    mkdirSync(join(root, 'etc'));
    writeFileSync(join(root, 'etc/version'), `${text}\n`);
  }, false);
  moving = { first: buildImage([base, await marker('first')], hostPlatform, false), second: buildImage([base, await marker('second')], hostPlatform, false) };

  await publish(work, open, index, [...imageBlobs(app), ...imageBlobs(other)], 'test/app:1');
  await publish(work, open, appDocker.manifest, imageBlobs(appDocker), 'test/app:docker');
  await publish(work, open, moving.first.manifest, imageBlobs(moving.first), 'test/moving:1');
  await publish(work, secured, app.manifest, imageBlobs(app), 'private/app:1', `alice:${ALICE.password}`);
}, 180_000);

afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch((e: unknown) => console.error(e));
});

// --- engines -----------------------------------------------------------------

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An engine on a fresh root whose registry traffic is loopback only (and logged to `log`). */
async function newEngine(registry: RegistryClientOptions = {}, log?: string[]): Promise<Engine> {
  const root = mkdtempSync(testRootPrefix());
  const engine = await Engine.open({ root, registry: { fetch: loopbackOnlyFetch(log), dockerConfigPath: false, ...registry } });
  cleanups.push(async () => {
    for (const c of engine.listContainers({ all: true })) await c.remove({ force: true }).catch(() => undefined);
    await engine.close();
    rmSync(root, { recursive: true, force: true });
  });
  return engine;
}

/** Everything a pull could leave: images, layers (and temporary layer dirs), blobs (and temporary blob files). */
function storeState(engine: Engine): Record<string, string[]> {
  return {
    images: engine.images.list().map((i) => i.id).sort(),
    layers: readdirSync(join(engine.root, 'layers')).sort(),
    blobs: readdirSync(join(engine.root, 'blobs', 'sha256')).sort(),
    rootFiles: readdirSync(engine.root).filter((n) => n.includes('tmp')),
  };
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

/** Runs `script` in a container of `image` and returns its output. */
async function runScript(engine: Engine, image: string, script: string, extra: Record<string, unknown> = {}): Promise<string> {
  const c = await engine.run({ image, cmd: ['/bin/sh', '-c', script], env: { PATH }, wait: true, ...extra });
  const out = await c.logs();
  expect((await c.wait()).exitCode).toBe(0);
  await c.remove();
  return out;
}

/**
 * A TCP forwarder to a registry that can be shut and opened again on the same
 * port: the registry as clients see it going down and coming back.
 */
async function startGate(upstream: RegistryFixture): Promise<{ host: string; shut(): Promise<void>; reopen(): Promise<void> }> {
  const port = await freePort();
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  const reopen = () =>
    new Promise<void>((resolve, reject) => {
      server = net.createServer((client) => {
        const up = net.connect(upstream.port, '127.0.0.1');
        for (const s of [client, up]) {
          sockets.add(s);
          s.on('error', () => undefined);
          s.on('close', () => {
            sockets.delete(s);
            client.destroy();
            up.destroy();
          });
        }
        client.pipe(up).pipe(client);
      });
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
  const shut = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      if (!server?.listening) return resolve();
      server.close(() => resolve());
    });
  await reopen();
  cleanups.push(shut);
  return { host: `127.0.0.1:${port}`, shut, reopen };
}

async function newProxy(upstream: RegistryFixture): Promise<ProxyFixture> {
  const proxy = await startProxy(upstream.host);
  cleanups.push(() => proxy.stop());
  return proxy;
}

const isBlobGet = (url: string | undefined, blob: Blob) => url?.endsWith(`/blobs/${blob.digest}`) ?? false;

// --- pulling -------------------------------------------------------------------

describe('pull', () => {
  it('pulls through an index: layers unpacked with whiteouts, opaque dirs and hard links, blobs kept as served', async () => {
    const engine = await newEngine();
    const events: PullProgress[] = [];
    const ref = `${open.host}/test/app:1`;
    const image = await engine.images.pull(ref, { onProgress: (p) => events.push(p) });

    expect(image.id).toBe(app.config.digest);
    expect(image.repoTags).toEqual([ref]);
    expect(image.repoDigests).toEqual([`${open.host}/test/app@${index.digest}`]);
    expect(image.manifestDigest).toBe(app.manifest.digest);
    expect(formatPlatform({ os: image.os, architecture: image.architecture })).toBe(formatPlatform({ os: host.os, architecture: host.architecture }));
    expect(image.diffIds).toEqual(app.diffIds);

    // Every layer's blob is in the blob store byte for byte, and its layer knows it.
    const store = engine.images.store;
    const chains = chainIds(app.diffIds);
    app.layers.forEach((blob, i) => {
      expect(store.readBlob(blob.digest).equals(blob.bytes)).toBe(true);
      expect(store.layer(chains[i]!)?.blobDigest).toBe(blob.digest);
    });
    expect(store.readBlob(app.manifest.digest).equals(app.manifest.bytes)).toBe(true);

    // The layers as overlay lower dirs, topmost first.
    const [big, deletes, files] = store.layerDirs(image);
    const gone = lstatSync(join(deletes!, 'tmp/gone.txt'));
    expect(gone.isCharacterDevice() && gone.rdev === 0).toBe(true);
    expect(lstatSync(join(deletes!, 'etc/os-release')).isCharacterDevice()).toBe(true);
    expect(portableFsOps.lgetxattr(join(deletes!, 'data/old'), 'trusted.overlay.opaque').toString()).toBe('y');
    const [h1, h2] = ['srv/hard1', 'srv/hard2'].map((p) => statSync(join(files!, p)));
    expect(h1!.ino).toBe(h2!.ino);
    expect(h1!.nlink).toBe(2);
    expect(statSync(join(big!, 'opt/random.bin')).size).toBe(512 * 1024);

    // And as a container sees them.
    const out = await runScript(
      engine,
      ref,
      'cat /etc/motd; ls /data/old; ls /tmp; test -e /etc/os-release && echo os-release || echo no-os-release; ' +
        'cat /srv/hard2; [ "$(stat -c %i /srv/hard1)" = "$(stat -c %i /srv/hard2)" ] && echo same-inode; test -e /ARCH || echo no-arch',
    );
    expect(out.split('\n')).toEqual(['from the top layer', 'new.txt', 'kept.txt', 'no-os-release', 'one file, two names', 'same-inode', 'no-arch', '']);

    // Progress: each layer from waiting through downloading to done, with its size.
    for (const [i, blob] of app.layers.entries()) {
      const mine = events.filter((e) => e.index === i);
      expect(mine[0]).toMatchObject({ status: 'waiting', digest: blob.digest, id: blob.digest.slice(7, 19), total: blob.size });
      expect(mine.some((e) => e.status === 'downloading')).toBe(true);
      expect(mine[mine.length - 1]).toMatchObject({ status: 'done', current: blob.size, total: blob.size });
      const bytes = mine.map((e) => e.current);
      expect(bytes).toEqual([...bytes].sort((a, b) => a - b));
    }
    // Published bottom-up, whatever order the downloads finished in.
    expect(events.filter((e) => e.status === 'done').map((e) => e.index)).toEqual([0, 1, 2, 3]);
    // Three downloads at once (the default), the fourth only once a slot is free.
    const started = events.filter((e) => e.status === 'downloading' && e.current === 0).map((e) => events.indexOf(e));
    const firstFinished = events.findIndex((e) => e.status === 'extracting');
    expect(started.filter((at) => at < firstFinished)).toHaveLength(3);
    expect(started).toHaveLength(4);
    expect(started[3]!).toBeGreaterThan(firstFinished);
  });

  it('reuses layers it has ("Already exists"), also under other media types, and re-tags', async () => {
    const log: string[] = [];
    const engine = await newEngine({}, log);
    await engine.images.pull(`${open.host}/test/app:1`);
    const blobGets = () => log.filter((l) => l.includes('/blobs/sha256:'));
    const before = blobGets().length;
    const events: PullProgress[] = [];
    const image = await engine.images.pull(`${open.host}/test/app:docker`, { onProgress: (p) => events.push(p) });
    expect(image.id).toBe(app.config.digest); // the same config bytes: the same image
    expect(image.repoTags.sort()).toEqual([`${open.host}/test/app:1`, `${open.host}/test/app:docker`]);
    expect(events.map((e) => e.status)).toEqual(['exists', 'exists', 'exists', 'exists']);
    expect(blobGets().length - before).toBe(1); // the config only
  });

  it('pulls another platform of the index on request, and refuses one it lacks', async () => {
    const engine = await newEngine();
    const image = await engine.images.pull(`${open.host}/test/app:1`, { platform: formatPlatform(otherPlatform) });
    expect(image.id).toBe(other.config.digest);
    expect(image.architecture).toBe(otherPlatform.architecture);
    const [dir] = engine.images.store.layerDirs(image);
    expect(readFileSync(join(dir!, 'ARCH'), 'utf8')).toBe(otherPlatform.architecture);

    const before = storeState(engine);
    const err = await caught(engine.images.pull(`${open.host}/test/app:1`, { platform: 'linux/s390x' }));
    expect(err).toBeInstanceOf(NoMatchingPlatformError);
    expect(err).toBeInstanceOf(ImageNotFoundError);
    // A single-platform image must be of the platform asked for.
    expect(await caught(engine.images.pull(`${open.host}/test/app:docker`, { platform: 'linux/s390x' }))).toBeInstanceOf(NoMatchingPlatformError);
    expect(storeState(engine)).toEqual(before);
  });

  it('pulls by digest: no tag, a repo digest', async () => {
    const engine = await newEngine();
    const image = await engine.images.pull(`${open.host}/test/app@${index.digest}`, { concurrency: 1 });
    expect(image.repoTags).toEqual([]);
    expect(image.repoDigests).toEqual([`${open.host}/test/app@${index.digest}`]);
    expect(engine.images.inspect(`${open.host}/test/app@${index.digest}`).id).toBe(app.config.digest);
  });

  it('validates its options', async () => {
    const engine = await newEngine();
    expect(await caught(engine.images.pull(`${open.host}/test/app:1`, { concurrency: 0 }))).toMatchObject({ option: 'concurrency' });
    expect(await caught(engine.images.pull(`${open.host}/test/app:1`, { bogus: 1 } as never))).toBeInstanceOf(InvalidOptionError);
    expect(await caught(engine.images.pull('Bad/Name'))).toBeInstanceOf(InvalidReferenceError);
    expect(await caught(engine.images.pull(''))).toBeInstanceOf(InvalidOptionError);
    const root = mkdtempSync(testRootPrefix());
    cleanups.push(async () => rmSync(root, { recursive: true, force: true }));
    expect(await caught(Engine.open({ root, registry: { mirrors: 'https://m' } as never }))).toMatchObject({ option: 'registry.mirrors' });
  });
});

describe('pull with token auth', () => {
  const ref = () => `${secured.host}/private/app:1`;

  it('uses the engine\'s credentials', async () => {
    const engine = await newEngine({ auth: { [secured.host]: ALICE } });
    const image = await engine.images.pull(ref());
    expect(image.id).toBe(app.config.digest);
    expect(await runScript(engine, ref(), 'cat /etc/motd')).toBe('from the top layer\n');
  });

  it('reads Docker\'s config file', async () => {
    const dir = mkdtempSync(join(work, 'docker-config-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { [secured.host]: { auth: Buffer.from(`alice:${ALICE.password}`).toString('base64') } } }));
    const engine = await newEngine({ dockerConfigPath: join(dir, 'config.json') });
    expect((await engine.images.pull(ref())).id).toBe(app.config.digest);
  });

  it('refused credentials: AuthenticationError, nothing stored, then a pull with good ones succeeds', async () => {
    const engine = await newEngine({ auth: { [secured.host]: { username: 'alice', password: 'wrong' } } });
    const before = storeState(engine);
    expect(await caught(engine.images.pull(ref()))).toBeInstanceOf(AuthenticationError);
    expect(storeState(engine)).toEqual(before);
    // Anonymous: the token server grants nothing.
    const anonymous = await newEngine();
    expect(await caught(anonymous.images.pull(ref()))).toBeInstanceOf(AuthenticationError);
    expect(await caught(anonymous.run({ image: ref(), cmd: ['true'] }))).toBeInstanceOf(AuthenticationError);
    expect(anonymous.listContainers({ all: true })).toEqual([]);
    // Credentials for this pull only win over the engine's.
    expect((await engine.images.pull(ref(), { auth: ALICE })).id).toBe(app.config.digest);
  });
});

describe('auto-pull on create and run', () => {
  it('pulls a missing image (pull: missing, the default), never with pull: never', async () => {
    const log: string[] = [];
    const engine = await newEngine({}, log);
    const ref = `${open.host}/test/app:1`;
    await expect(engine.run({ image: ref, cmd: ['true'], pull: 'never' })).rejects.toBeInstanceOf(ImageNotFoundError);
    expect(await runScript(engine, ref, 'cat /etc/motd')).toBe('from the top layer\n');
    expect(engine.images.list().map((i) => i.id)).toEqual([app.config.digest]);
    const manifests = log.filter((l) => l.includes('/manifests/')).length;
    await runScript(engine, ref, 'true'); // present now: no registry traffic
    expect(log.filter((l) => l.includes('/manifests/')).length).toBe(manifests);
    await expect(engine.create({ image: ref, pull: 'sometimes' } as never)).rejects.toMatchObject({ option: 'pull' });
  });

  it('pull: always gets the image a moved tag names now; missing keeps the local one', async () => {
    const engine = await newEngine();
    const ref = `${open.host}/test/moving:1`;
    expect(await runScript(engine, ref, 'cat /etc/version')).toBe('first\n');
    await publish(work, open, moving.second.manifest, imageBlobs(moving.second), 'test/moving:1');
    try {
      expect(await runScript(engine, ref, 'cat /etc/version')).toBe('first\n');
      expect(await runScript(engine, ref, 'cat /etc/version', { pull: 'always' })).toBe('second\n');
      expect(engine.images.inspect(ref).id).toBe(moving.second.config.digest);
      expect(await caught(engine.create({ image: moving.first.config.digest, pull: 'always' }))).toBeInstanceOf(InvalidOptionError);
    } finally {
      await publish(work, open, moving.first.manifest, imageBlobs(moving.first), 'test/moving:1');
    }
  });

  it('an image that cannot be pulled: typed error, no container', async () => {
    const engine = await newEngine();
    const err = await caught(engine.run({ image: `${open.host}/test/nosuch:1`, cmd: ['true'] }));
    expect(err).toBeInstanceOf(ManifestNotFoundError);
    expect(err).toBeInstanceOf(ImageNotFoundError);
    // Docker Hub is beyond this test's loopback-only fetch: unreachable, not "not found".
    expect(await caught(engine.run({ image: 'busybox:1.36', cmd: ['true'] }))).toBeInstanceOf(RegistryUnavailableError);
    expect(engine.listContainers({ all: true })).toEqual([]);
    expect(readdirSync(join(engine.root, 'containers'))).toEqual([]);
  });
});

// --- failures ----------------------------------------------------------------

describe('failed pulls leave nothing and can be retried', () => {
  /** Runs a failing pull, checks its error and that the store is as before, then a retry that works. */
  async function failThenRetry(engine: Engine, failing: () => Promise<unknown>, type: abstract new (...args: never[]) => Error, retry: () => Promise<unknown>): Promise<Error> {
    const before = storeState(engine);
    const err = await caught(failing());
    expect(err).toBeInstanceOf(type);
    expect(storeState(engine)).toEqual(before);
    await retry();
    return err as Error;
  }

  it('unknown repository, unknown tag, wrong digest: ManifestNotFoundError', async () => {
    const engine = await newEngine();
    const good = () => engine.images.pull(`${open.host}/test/app:1`);
    const repo = await failThenRetry(engine, () => engine.images.pull(`${open.host}/test/nosuch:1`), ManifestNotFoundError, good);
    expect(repo).toBeInstanceOf(ImageNotFoundError);
    expect(['NAME_UNKNOWN', 'MANIFEST_UNKNOWN']).toContain((repo as ManifestNotFoundError).registryCode);
    const tag = await failThenRetry(engine, () => engine.images.pull(`${open.host}/test/app:nosuch`), ManifestNotFoundError, good);
    expect((tag as ManifestNotFoundError).registryCode).toBe('MANIFEST_UNKNOWN');
    await failThenRetry(engine, () => engine.images.pull(`${open.host}/test/app@sha256:${'0'.repeat(64)}`), ManifestNotFoundError, good);
  });

  it('a tampered layer blob: DigestMismatchError, no partial layer or blob', async () => {
    const proxy = await newProxy(open);
    const engine = await newEngine();
    const ref = `${proxy.host}/test/app:1`;
    // The first byte: unpacking fails at once (no gzip magic, no tar header), long
    // before the digest can be checked at the end; the digest is still what is reported.
    const target = app.layers[3]!;
    proxy.handler = (req) =>
      isBlobGet(req.url, target) ? { kind: 'transform', body: (b) => Buffer.concat([Buffer.from([b[0]! ^ 0xff]), b.subarray(1)]) } : { kind: 'pass' };
    const err = await failThenRetry(engine, () => engine.images.pull(ref), DigestMismatchError, async () => {
      proxy.handler = () => ({ kind: 'pass' });
      await engine.images.pull(ref);
    });
    expect((err as DigestMismatchError).expected).toBe(target.digest);
    expect(engine.images.store.hasBlob(target.digest)).toBe(true);
  });

  it('a blob cut short is resumed; one that keeps breaking off: RegistryError', async () => {
    const proxy = await newProxy(open);
    const target = app.layers[3]!; // the big one
    const ref = `${proxy.host}/test/app:1`;
    // Cut once: the download resumes with a Range request and the pull succeeds.
    let cuts = 0;
    proxy.handler = (req) => (isBlobGet(req.url, target) && cuts++ === 0 ? { kind: 'cut', after: 100_000 } : { kind: 'pass' });
    const resumed = await newEngine();
    await resumed.images.pull(ref);
    expect(proxy.requests.filter((r) => isBlobGet(r.url, target)).map((r) => r.headers.range)).toEqual([undefined, 'bytes=100000-']);

    // Cut every time: given up after the retries.
    const engine = await newEngine({ maxBlobRetries: 1 });
    proxy.handler = (req) => (isBlobGet(req.url, target) ? { kind: 'cut', after: 1000 } : { kind: 'pass' });
    const err = await failThenRetry(engine, () => engine.images.pull(ref), RegistryError, async () => {
      proxy.handler = () => ({ kind: 'pass' });
      await engine.images.pull(ref);
    });
    expect(err.message).toMatch(/broke off/);
  });

  it('a registry that is down: RegistryUnavailableError; pulled once it is back', async () => {
    const gate = await startGate(open);
    const engine = await newEngine();
    const ref = `${gate.host}/test/app:1`;
    await gate.shut();
    await failThenRetry(engine, () => engine.images.pull(ref), RegistryUnavailableError, async () => {
      await gate.reopen();
      await engine.images.pull(ref);
    });
    // Down again, from the start of a run this time.
    await engine.images.remove(ref);
    await gate.shut();
    expect(await caught(engine.run({ image: ref, cmd: ['true'] }))).toBeInstanceOf(RegistryUnavailableError);
    expect(engine.listContainers({ all: true })).toEqual([]);
    await gate.reopen();
    expect(await runScript(engine, ref, 'cat /etc/motd')).toBe('from the top layer\n');
  });

  it('an abort mid-download: AbortedError, nothing stored', async () => {
    const engine = await newEngine();
    const ref = `${open.host}/test/app:1`;
    const abort = new AbortController();
    const big = app.layers[3]!;
    const onProgress = (p: PullProgress) => {
      if (p.digest === big.digest && p.status === 'downloading' && p.current > 0) abort.abort();
    };
    await failThenRetry(engine, () => engine.images.pull(ref, { signal: abort.signal, onProgress }), AbortedError, () => engine.images.pull(ref));
    // An abort before anything happened, through run.
    const gone = new AbortController();
    gone.abort();
    await engine.images.remove(ref);
    expect(await caught(engine.run({ image: ref, cmd: ['true'], signal: gone.signal }))).toBeInstanceOf(AbortedError);
    expect(engine.images.list()).toEqual([]);
  });
});

// --- the store's side -----------------------------------------------------------

describe('a layer unpacked before its parent is there', () => {
  it('is published only once the parent is; a parent that fails leaves nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dockless-pull-store-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    const store = ImageStore.open(dir);
    const chains = chainIds(app.diffIds);
    let release!: () => void;
    const parentThere = new Promise<void>((resolve) => (release = resolve));
    let unpacked = false;
    const child = store.addLayer([app.layers[1]!.bytes], {
      parentChainId: chains[0],
      diffId: app.diffIds[1],
      parentReady: async () => {
        unpacked = true;
        await parentThere;
      },
    });
    await vi.waitFor(() => expect(unpacked).toBe(true));
    expect(store.hasLayer(chains[1]!)).toBe(false);
    await store.addLayer([app.layers[0]!.bytes], { diffId: app.diffIds[0] });
    release();
    expect((await child).parent).toBe(chains[0]);
    expect(store.hasLayer(chains[1]!)).toBe(true);

    const orphan = store.addLayer([app.layers[2]!.bytes], {
      parentChainId: `sha256:${'1'.repeat(64)}`,
      diffId: app.diffIds[2],
      parentReady: async () => {
        throw new Error('the parent failed');
      },
    });
    await expect(orphan).rejects.toThrow('the parent failed');
    // A parentReady that resolves without the parent in place: refused too.
    const missing = store.addLayer([app.layers[2]!.bytes], { parentChainId: `sha256:${'1'.repeat(64)}`, diffId: app.diffIds[2], parentReady: async () => undefined });
    await expect(missing).rejects.toThrow(/parent layer .* is not in the store/);
    expect(readdirSync(join(dir, 'layers')).sort()).toEqual(chains.slice(0, 2).map((c) => c.slice(7)).sort());
  });
});
