/**
 * Pushing images to real Distribution registries (Debian's docker-registry),
 * checked with an independent client: skopeo inspects what the registry
 * serves and copies it out to a `dir:` whose layer blobs must unpack to the
 * image's DiffIDs. Images: busybox imported from a directory (its layer is
 * packed and gzipped once), a three-layer image loaded from a docker-archive
 * skopeo wrote (its layers kept as loaded), and an imported layer with
 * whiteouts, a pulled image (pushed with the manifest it came with) and zstd
 * layers (an OCI manifest). Pushing again sends nothing; another repository
 * mounts the blobs; token auth works; a layer that cannot be reproduced is
 * refused cleanly. Every engine's fetch refuses anything but loopback.
 */

import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxRootfs } from '../examples/busybox-rootfs.js';
import {
  AbortedError,
  AuthenticationError,
  Engine,
  ImageNotFoundError,
  InvalidOptionError,
  InvalidReferenceError,
  LayerNotReproducibleError,
  type PushProgress,
  type RegistryClientOptions,
} from '../src/index.js';
import { encodeTarHeader, readTar, TAR_END, tarPadding } from '../src/image/tar.js';
import {
  buildImage,
  buildThreeLayers,
  loopbackOnlyFetch,
  type ProxyFixture,
  type RegistryFixture,
  requireTools,
  skopeo,
  startProxy,
  startRegistry,
  writeLayout,
} from './fixtures/registry.js';
import { startTokenServer, type TokenServerFixture } from './fixtures/token-server.js';
import { findLeaks, testRootPrefix } from './helpers/leaks.js';

const run = promisify(execFile);
const ALICE = { username: 'alice', password: 'wonderland' };
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let work: string;
let open: RegistryFixture;
let secured: RegistryFixture;
let tokens: TokenServerFixture;
let proxy: ProxyFixture;
let threeLayers: string; // a docker-archive written by skopeo: busybox + /etc/hello + /srv/data.bin
const stops: Array<() => Promise<void>> = [];

beforeAll(async () => {
  await requireTools();
  work = mkdtempSync(join(tmpdir(), 'dockless-push-test-'));
  stops.push(async () => rmSync(work, { recursive: true, force: true }));
  tokens = await startTokenServer({ users: { alice: ALICE.password } });
  stops.push(() => tokens.stop());
  open = await startRegistry();
  stops.push(() => open.stop());
  secured = await startRegistry({ token: { realm: tokens.realm, service: tokens.service, issuer: tokens.issuer, rootCertBundle: tokens.certPath } });
  stops.push(() => secured.stop());
  proxy = await startProxy(open.host);
  stops.push(() => proxy.stop());

  const [base, hello, data] = await buildThreeLayers(work);
  const image = buildImage([base, hello, data], { os: 'linux', architecture: 'amd64' }, false);
  const layout = writeLayout(join(work, 'layout'), image.manifest, [...image.layers, image.config], 'x');
  threeLayers = join(work, 'three.tar');
  await skopeo(['copy', '--quiet', layout, `docker-archive:${threeLayers}:three:1`]);
}, 120_000);

afterAll(async () => {
  for (const stop of stops.reverse()) await stop().catch((e: unknown) => console.error(e));
});

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  expect(findLeaks()).toEqual([]);
});


/** An engine on a fresh root (registry traffic loopback only) with busybox imported as `busybox:latest`. */
async function newEngine(registry: RegistryClientOptions = {}): Promise<Engine> {
  const root = mkdtempSync(testRootPrefix());
  const engine = await Engine.open({ root, registry: { fetch: loopbackOnlyFetch(), dockerConfigPath: false, ...registry } });
  cleanups.push(async () => {
    for (const c of engine.listContainers({ all: true })) await c.remove({ force: true }).catch(() => undefined);
    await engine.close();
    rmSync(root, { recursive: true, force: true });
  });
  const rootfs = makeBusyboxRootfs(join(root, 'rootfs'));
  await engine.images.import(rootfs, { ref: 'busybox:latest', changes: ['CMD ["sh"]'] });
  rmSync(rootfs, { recursive: true, force: true });
  return engine;
}

/** What skopeo sees in the registry: `skopeo inspect` and a `dir:` copy, each layer gunzipped and hashed. */
async function fromRegistry(registry: RegistryFixture, target: string, creds?: string): Promise<{ digest: string; layers: string[]; diffIds: string[]; mediaType: string }> {
  const auth = creds ? ['--creds', creds] : [];
  const inspect = JSON.parse(await skopeo(['inspect', '--tls-verify=false', ...auth, `docker://${registry.host}/${target}`])) as { Digest: string; Layers: string[] };
  const dir = mkdtempSync(join(work, 'copy-'));
  await skopeo(['copy', '--quiet', '--src-tls-verify=false', ...(creds ? ['--src-creds', creds] : []), `docker://${registry.host}/${target}`, `dir:${dir}`]);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { mediaType: string; layers: Array<{ digest: string }> };
  const layers = manifest.layers.map((l) => l.digest);
  const diffIds = layers.map((d) => {
    const blob = readFileSync(join(dir, d.slice('sha256:'.length)));
    expect(sha256(blob)).toBe(d);
    return sha256(decompressed(blob));
  });
  expect(inspect.Layers).toEqual(layers);
  return { digest: inspect.Digest, layers, diffIds, mediaType: manifest.mediaType };
}

function statuses(events: PushProgress[]): string[] {
  return events.filter((e) => e.status !== 'uploading').map((e) => `${e.kind}${e.index ?? ''}:${e.status}`);
}

function blobFiles(engine: Engine): string[] {
  return readdirSync(join(engine.root, 'blobs/sha256')).sort();
}

describe('push', () => {
  it('pushes an imported image as Docker schema 2; skopeo reads back its layer and config', async () => {
    const engine = await newEngine();
    const target = `${open.host}/test/busybox:1`;
    await engine.images.tag('busybox', target);
    const events: PushProgress[] = [];
    const digest = await engine.images.push(target, { onProgress: (e) => events.push(e) });

    const image = engine.images.inspect(target);
    const seen = await fromRegistry(open, 'test/busybox:1');
    expect(seen.digest).toBe(digest);
    expect(seen.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(seen.diffIds).toEqual(image.rootfs.diff_ids);
    const config = JSON.parse(await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${target}`])) as { rootfs: { diff_ids: string[] } };
    expect(config.rootfs.diff_ids).toEqual(image.rootfs.diff_ids);
    expect(sha256(Buffer.from(await skopeo(['inspect', '--config', '--raw', '--tls-verify=false', `docker://${target}`])))).toBe(image.id);

    expect(statuses(events)).toEqual(['layer0:preparing', 'layer0:pushed', 'config:pushed', 'manifest:pushed']);
    const layerUploads = events.filter((e) => e.kind === 'layer' && e.status === 'uploading');
    expect(layerUploads.at(-1)!.current).toBe(layerUploads.at(-1)!.total);
    expect(layerUploads.every((e, i) => i === 0 || e.current! >= layerUploads[i - 1]!.current!)).toBe(true);
    expect(image.repoDigests).toContain(`${open.host}/test/busybox@${digest}`);
    // The pushed digest now names the image locally.
    expect(engine.images.inspect(`${open.host}/test/busybox@${digest}`).id).toBe(image.id);
  });

  it('sends nothing the second time: every blob exists, only the manifest is put again', async () => {
    const engine = await newEngine();
    const target = `${proxy.host}/test/again:1`;
    await engine.images.tag('busybox', target);
    const first = await engine.images.push(target);
    const blobsAfterFirst = blobFiles(engine);
    proxy.requests.length = 0;
    const events: PushProgress[] = [];
    const second = await engine.images.push(target, { onProgress: (e) => events.push(e) });

    expect(second).toBe(first);
    expect(statuses(events)).toEqual(['layer0:preparing', 'layer0:exists', 'config:exists', 'manifest:pushed']);
    const sent = proxy.requests.map((r) => `${r.method} ${r.url.replace(/\?.*/, '')}`);
    expect(sent.filter((r) => !r.startsWith('HEAD ') && !r.startsWith('GET /v2/'))).toEqual([`PUT /v2/test/again/manifests/1`]);
    // The layer's gzip blob was made once and kept: nothing new in the store either.
    expect(blobFiles(engine)).toEqual(blobsAfterFirst);
  });

  it('pushes a three-layer image loaded from a skopeo docker-archive, layers as loaded', async () => {
    const engine = await newEngine();
    const [loaded] = await engine.images.load(threeLayers);
    expect(loaded!.repoTags).toEqual(['three:1']);
    const target = `${open.host}/test/three:1`;
    await engine.images.tag('three:1', target);
    const digest = await engine.images.push(target);
    const seen = await fromRegistry(open, 'test/three:1');
    expect(seen.digest).toBe(digest);
    expect(seen.diffIds).toEqual(loaded!.diffIds);
    expect(seen.layers).toHaveLength(3);
    // The loaded layers stack as they should.
    const c = await engine.run({ image: target, user: '0:0', cmd: ['/bin/busybox', 'cat', '/etc/hello'], wait: true });
    expect((await c.logs()).trim()).toBe('hello from layer 2');
  });

  it('mounts blobs from another repository of the same registry', async () => {
    const engine = await newEngine();
    await engine.images.tag('busybox', `${open.host}/team/source:1`);
    await engine.images.push(`${open.host}/team/source:1`);
    await engine.images.tag('busybox', `${open.host}/team/copy:1`);
    const events: PushProgress[] = [];
    const digest = await engine.images.push(`${open.host}/team/copy:1`, { onProgress: (e) => events.push(e) });

    expect(statuses(events)).toEqual(['layer0:preparing', 'layer0:mounted', 'config:mounted', 'manifest:pushed']);
    expect(events.find((e) => e.status === 'mounted')?.mountedFrom).toBe(`${open.host}/team/source`);
    expect(events.some((e) => e.status === 'uploading')).toBe(false);
    const seen = await fromRegistry(open, 'team/copy:1');
    expect(seen.digest).toBe(digest);
    expect(engine.images.inspect('busybox').repoDigests.sort()).toEqual([`${open.host}/team/copy@${digest}`, `${open.host}/team/source@${digest}`]);
  });

  it('pushes through token auth with per-call credentials; without them it is refused', async () => {
    const engine = await newEngine();
    const target = `${secured.host}/private/busybox:1`;
    await engine.images.tag('busybox', target);
    await expect(engine.images.push(target)).rejects.toBeInstanceOf(AuthenticationError);
    tokens.requests.length = 0;
    const digest = await engine.images.push(target, { auth: ALICE });
    expect(tokens.requests.some((r) => r.user === 'alice' && r.scopes.includes('repository:private/busybox:pull,push'))).toBe(true);
    const seen = await fromRegistry(secured, 'private/busybox:1', `alice:${ALICE.password}`);
    expect(seen.digest).toBe(digest);
  });

  it('takes credentials from the engine options too', async () => {
    const engine = await newEngine({ auth: { [secured.host]: ALICE } });
    const target = `${secured.host}/private/engine-creds:1`;
    await engine.images.tag('busybox', target);
    const digest = await engine.images.push(target);
    expect((await fromRegistry(secured, 'private/engine-creds:1', `alice:${ALICE.password}`)).digest).toBe(digest);
  });

  it('packs a layer with whiteouts back to its DiffID (OCI whiteouts from overlay ones)', async () => {
    const engine = await newEngine();
    // A layer in dockless's canonical form: sorted, whiteouts as packDirectory writes them.
    const entry = (h: Parameters<typeof encodeTarHeader>[0], body = Buffer.alloc(0)) => [encodeTarHeader({ ...h, size: body.length }), body, tarPadding(body.length)];
    const tar = Buffer.concat([
      ...entry({ name: 'etc', type: 'directory', mode: 0o755, mtime: 1_700_000_000 }),
      ...entry({ name: 'etc/.wh..wh..opq', type: 'file', mode: 0o755, mtime: 0 }),
      ...entry({ name: 'etc/motd', type: 'file', mode: 0o644, mtime: 1_700_000_000 }, Buffer.from('only this\n')),
      ...entry({ name: '.wh.gone', type: 'file', mode: 0o600, mtime: 0 }),
      TAR_END,
    ]);
    const image = await engine.images.import(tarStream(tar), { ref: 'whiteouts:1' });
    expect(image.diffIds).toEqual([sha256(tar)]);
    const target = `${open.host}/test/whiteouts:1`;
    await engine.images.tag('whiteouts:1', target);
    await engine.images.push(target);
    const seen = await fromRegistry(open, 'test/whiteouts:1');
    expect(seen.diffIds).toEqual([sha256(tar)]);
    // skopeo's copy holds the OCI whiteouts again.
    const dir = mkdtempSync(join(work, 'wh-'));
    await skopeo(['copy', '--quiet', '--src-tls-verify=false', `docker://${target}`, `dir:${dir}`]);
    const names: string[] = [];
    for await (const { header } of readTar([gunzipSync(readFileSync(join(dir, seen.layers[0]!.slice(7))))])) names.push(header.name);
    expect(names).toEqual(['etc/', 'etc/.wh..wh..opq', 'etc/motd', '.wh.gone']);
  });

  it('pushes an imported tar in another tool\'s form with its own bytes', async () => {
    const engine = await newEngine();
    // GNU tar's './'-prefixed names are not the canonical form: the files would pack to another tar.
    const dir = mkdtempSync(join(work, 'gnu-'));
    writeFileSync(join(dir, 'file'), 'gnu\n');
    const { stdout } = await run('tar', ['--numeric-owner', '-C', dir, '-cf', '-', './file'], { encoding: 'buffer' });
    await engine.images.import(tarStream(stdout as Buffer), { ref: 'gnu:1' });
    const target = `${open.host}/test/gnu:1`;
    await engine.images.tag('gnu:1', target);
    await engine.images.push(target);
    expect((await fromRegistry(open, 'test/gnu:1')).diffIds).toEqual([sha256(stdout as Buffer)]);
  });

  it('refuses a layer whose files do not pack back to its DiffID, storing and sending nothing', async () => {
    const engine = await newEngine();
    const dir = mkdtempSync(join(work, 'odd-'));
    writeFileSync(join(dir, 'file'), 'odd\n');
    const { stdout } = await run('tar', ['--numeric-owner', '-C', dir, '-cf', '-', './file'], { encoding: 'buffer' });
    await engine.images.import(tarStream(stdout as Buffer), { ref: 'odd:1' });
    // The imported bytes are lost (a damaged store): only the files are left to pack.
    rmSync(join(engine.root, 'blobs/sha256', sha256(stdout as Buffer).slice(7)));
    const target = `${open.host}/test/odd:1`;
    await engine.images.tag('odd:1', target);
    const before = blobFiles(engine);
    const err = await engine.images.push(target).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LayerNotReproducibleError);
    expect((err as LayerNotReproducibleError).expected).toBe(engine.images.inspect(target).rootfs.diff_ids[0]);
    expect(blobFiles(engine)).toEqual(before);
    expect(readdirSync(join(engine.root, 'blobs/sha256')).filter((n) => n.includes('tmp'))).toEqual([]);
    await expect(skopeo(['inspect', '--tls-verify=false', `docker://${target}`])).rejects.toThrow(/manifest unknown|not found/i);
  });

  it('pushes a pulled image with the manifest it came with, mounting its layers from where it was pulled', async () => {
    await skopeo(['copy', '--quiet', '--dest-tls-verify=false', `docker-archive:${threeLayers}`, `docker://${open.host}/upstream/three:1`]);
    const upstream = JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://${open.host}/upstream/three:1`])) as { Digest: string };
    const engine = await newEngine();
    await engine.images.pull(`${open.host}/upstream/three:1`);
    await engine.images.tag(`${open.host}/upstream/three:1`, `${open.host}/mine/three:1`);
    const events: PushProgress[] = [];
    const digest = await engine.images.push(`${open.host}/mine/three:1`, { onProgress: (e) => events.push(e) });
    expect(digest).toBe(upstream.Digest);
    // Layers go concurrently: their events interleave.
    expect(statuses(events).filter((s) => !s.endsWith(':preparing')).sort()).toEqual(['config:mounted', 'layer0:mounted', 'layer1:mounted', 'layer2:mounted', 'manifest:pushed']);
    expect(new Set(events.filter((e) => e.mountedFrom).map((e) => e.mountedFrom))).toEqual(new Set([`${open.host}/upstream/three`]));
  });

  it('describes zstd layers with an OCI manifest', async () => {
    const engine = await newEngine();
    const dir = mkdtempSync(join(work, 'zstd-'));
    writeFileSync(join(dir, 'motd'), 'zstd layer\n');
    const { stdout } = await run('tar', ['--sort=name', '--numeric-owner', '--owner=0', '--group=0', '--mtime=@0', '-C', dir, '-cf', '-', 'motd'], { encoding: 'buffer' });
    const tar = stdout as Buffer;
    const zst = execFileSync('zstd', ['-q', '-c'], { input: tar });
    const layer = { bytes: zst, digest: sha256(zst), size: zst.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd' };
    const image = buildImage([{ layer, diffId: sha256(tar) }], { os: 'linux', architecture: 'amd64' }, false);
    const layout = join(work, 'zstd-layout');
    writeLayout(layout, image.manifest, [...image.layers, image.config], 'zstd:1');
    const archive = join(work, 'zstd.tar');
    await run('tar', ['-C', layout, '-cf', archive, '.']);
    const [loaded] = await engine.images.load(archive);
    expect(loaded!.repoTags).toEqual(['zstd:1']);
    await engine.images.tag('zstd:1', `${open.host}/test/zstd:1`);
    await engine.images.push(`${open.host}/test/zstd:1`);
    const seen = await fromRegistry(open, 'test/zstd:1');
    expect(seen.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(seen.layers).toEqual([layer.digest]);
    expect(seen.diffIds).toEqual([sha256(tar)]);
  });

  it('validates its input', async () => {
    const engine = await newEngine();
    await expect(engine.images.push(`${open.host}/test/busybox@sha256:${'a'.repeat(64)}`)).rejects.toBeInstanceOf(InvalidReferenceError);
    await expect(engine.images.push(`${open.host}/test/nothing:1`)).rejects.toBeInstanceOf(ImageNotFoundError);
    await expect(engine.images.push('busybox', { bogus: true } as never)).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.images.push('')).rejects.toBeInstanceOf(InvalidOptionError);
    await engine.images.tag('busybox', `${open.host}/test/aborted:1`);
    await expect(engine.images.push(`${open.host}/test/aborted:1`, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortedError);
  });
});

/** A layer blob uncompressed (gzip or zstd, by its magic bytes). */
function decompressed(blob: Buffer): Buffer {
  if (blob[0] === 0x28 && blob[1] === 0xb5) return execFileSync('zstd', ['-dcq'], { input: blob, maxBuffer: 256 * 1024 * 1024 });
  return gunzipSync(blob);
}

function tarStream(data: Buffer): NodeJS.ReadableStream {
  return Readable.from([data]);
}
