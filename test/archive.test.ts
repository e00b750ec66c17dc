/**
 * Saving and loading image archives, docker-archive and OCI layout: round
 * trips into fresh engines (same image ids, the containers run), skopeo as the
 * independent reader of what dockless writes and writer of what it loads, bad
 * archives refused with typed errors and nothing left in the store. Also
 * `prune({ all: true })` and `diskUsage()` over images that share layers.
 */

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeBusyboxRootfs } from '../examples/busybox-rootfs.js';
import {
  AbortedError,
  DigestMismatchError,
  Engine,
  ImageNotFoundError,
  InvalidArchiveError,
  InvalidOptionError,
  UnsafeLayerError,
} from '../src/index.js';
import { readTar } from '../src/image/tar.js';
import {
  buildImage,
  buildThreeLayers,
  type BuiltImage,
  requireTools,
  skopeo,
  writeLayout,
} from './fixtures/registry.js';
import { findLeaks, testRootPrefix } from './helpers/leaks.js';

const run = promisify(execFile);
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let work: string;
let three: BuiltImage; // busybox + /etc/hello + /srv/data.bin, OCI
let two: BuiltImage; // the same first two layers: shares them with `three`
let threeLayout: string; // skopeo source of `three`
let twoLayout: string;
let n = 0;

beforeAll(async () => {
  await requireTools();
  work = mkdtempSync(join(tmpdir(), 'dockless-archive-test-'));
  const [base, hello, data] = await buildThreeLayers(work);
  const platform = { os: 'linux', architecture: 'amd64' };
  three = buildImage([base, hello, data], platform, false);
  two = buildImage([base, hello], platform, false);
  threeLayout = writeLayout(join(work, 'layout-three'), three.manifest, [...three.layers, three.config], 'x');
  twoLayout = writeLayout(join(work, 'layout-two'), two.manifest, [...two.layers, two.config], 'x');
}, 120_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  expect(findLeaks()).toEqual([]);
});


/** An engine on a fresh root, with busybox imported as `busybox:latest` unless `empty`. */
async function newEngine(empty = false): Promise<Engine> {
  const root = mkdtempSync(testRootPrefix());
  const engine = await Engine.open({ root, registry: { dockerConfigPath: false, fetch: () => Promise.reject(new Error('no network in archive tests')) } });
  cleanups.push(async () => {
    for (const c of engine.listContainers({ all: true })) await c.remove({ force: true }).catch(() => undefined);
    await engine.close();
    rmSync(root, { recursive: true, force: true });
  });
  if (!empty) {
    const rootfs = makeBusyboxRootfs(join(root, 'rootfs'));
    await engine.images.import(rootfs, { ref: 'busybox:latest', changes: ['CMD ["sh"]'] });
    rmSync(rootfs, { recursive: true, force: true });
  }
  return engine;
}

function file(name: string): string {
  return join(work, `${n++}-${name}`);
}

/** Images, layers, blobs and temporaries of an engine's store. */
function storeState(engine: Engine): Record<string, unknown> {
  return {
    images: engine.images.list().map((i) => [i.id, i.repoTags]),
    layers: readdirSync(join(engine.root, 'layers')).sort(),
    blobs: readdirSync(join(engine.root, 'blobs/sha256')).sort(),
  };
}

async function output(engine: Engine, image: string, cmd: string[], user?: string): Promise<string> {
  const c = await engine.run({ image, cmd, wait: true, ...(user ? { user } : {}) });
  const logs = await c.logs();
  await c.remove();
  return logs;
}

/** A tar archive made with tar-stream from entries (name → content, or a symlink). */
async function tarOf(entries: Array<{ name: string; data?: Buffer | string; linkname?: string }>): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    if (e.linkname !== undefined) p.entry({ name: e.name, type: 'symlink', linkname: e.linkname });
    else p.entry({ name: e.name }, Buffer.from(e.data ?? ''));
  }
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const c of p) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('save and load', () => {
  for (const format of ['docker-archive', 'oci-archive'] as const) {
    it(`round-trips busybox through a ${format} into a fresh engine, which runs it`, async () => {
      const from = await newEngine();
      await from.images.tag('busybox', 'example.com/team/tool:2');
      const original = from.images.inspect('busybox');
      const archive = file(`${format}.tar`);
      await from.images.save(['busybox', 'example.com/team/tool:2'], archive, { format });

      const to = await newEngine(true);
      const loaded = await to.images.load(archive);
      expect(loaded.map((i) => i.id)).toEqual([original.id]);
      expect(loaded[0]!.repoTags).toEqual(['busybox:latest', 'example.com/team/tool:2']);
      expect(to.images.inspect('busybox').config.Cmd).toEqual(['sh']);
      expect(to.images.inspect('busybox').rootfs.diff_ids).toEqual(original.rootfs.diff_ids);
      expect(await output(to, 'example.com/team/tool:2', ['sh', '-c', 'echo loaded $(cat /etc/os-release | head -1)'])).toBe('loaded NAME="dockless busybox"\n');

      // Saving what was loaded gives the same archive, byte for byte.
      const again = file(`${format}-again.tar`);
      await to.images.save(['busybox', 'example.com/team/tool:2'], again, { format });
      expect(readFileSync(again).equals(readFileSync(archive))).toBe(true);
    });
  }

  it('writes a docker-archive skopeo reads: copies to an OCI layout with the same DiffIDs and config', async () => {
    const engine = await newEngine();
    const image = engine.images.inspect('busybox');
    const archive = file('docker.tar');
    await engine.images.save(['busybox'], archive);
    const inspect = JSON.parse(await skopeo(['inspect', `docker-archive:${archive}`])) as { Layers: string[]; RepoTags: string[] };
    expect(inspect.Layers).toEqual(image.rootfs.diff_ids); // uncompressed layer tars: their digests are the DiffIDs
    const config = await skopeo(['inspect', '--config', '--raw', `docker-archive:${archive}`]);
    expect(sha256(config)).toBe(image.id);
    const dir = join(work, `oci-${n++}`);
    await skopeo(['copy', '--quiet', `docker-archive:${archive}`, `oci:${dir}:copied`]);
    const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
    const manifest = JSON.parse(readFileSync(join(dir, 'blobs/sha256', index.manifests[0]!.digest.slice(7)), 'utf8')) as { config: { digest: string } };
    // Converting to OCI, skopeo re-encodes the config (Go drops trailing zeros of fractional seconds), so compare content.
    const copied = JSON.parse(readFileSync(join(dir, 'blobs/sha256', manifest.config.digest.slice(7)), 'utf8')) as { rootfs: { diff_ids: string[] } };
    expect(copied.rootfs.diff_ids).toEqual(image.rootfs.diff_ids);
  });

  it('writes an oci-archive skopeo reads, by name, with the exact manifest digest', async () => {
    const engine = await newEngine();
    await engine.images.load(await skopeoArchive('docker-archive', threeLayout, 'three:1'));
    const archive = file('oci.tar');
    await engine.images.save(['busybox', 'three:1'], archive, { format: 'oci-archive' });
    const index = JSON.parse(await extract(archive, 'index.json')) as { manifests: Array<{ digest: string; annotations: Record<string, string> }> };
    expect(index.manifests.map((m) => m.annotations['org.opencontainers.image.ref.name'])).toEqual(['busybox:latest', 'three:1']);
    expect(index.manifests.map((m) => m.annotations['io.containerd.image.name'])).toEqual(['docker.io/library/busybox:latest', 'docker.io/library/three:1']);
    for (const [i, ref] of ['busybox:latest', 'three:1'].entries()) {
      const raw = await skopeo(['inspect', '--raw', `oci-archive:${archive}:${ref}`]);
      expect(sha256(raw)).toBe(index.manifests[i]!.digest);
      const dir = join(work, `oci-copy-${n++}`);
      await skopeo(['copy', '--quiet', `oci-archive:${archive}:${ref}`, `oci:${dir}:x`]);
      const config = await skopeo(['inspect', '--config', '--raw', `oci:${dir}:x`]);
      expect(sha256(config)).toBe(engine.images.inspect(ref).id);
    }
  });

  it('loads archives skopeo wrote (docker-archive and oci-archive) and runs them', async () => {
    for (const transport of ['docker-archive', 'oci-archive'] as const) {
      const engine = await newEngine(true);
      const [image] = await engine.images.load(await skopeoArchive(transport, threeLayout, 'example.com/three:1'));
      expect(image!.id).toBe(three.config.digest);
      expect(image!.diffIds).toEqual(three.diffIds);
      expect(image!.repoTags).toEqual(['example.com/three:1']);
      expect(await output(engine, 'example.com/three:1', ['/bin/busybox', 'cat', '/etc/hello'], '0:0')).toBe('hello from layer 2\n');
    }
  });

  it('loads several images sharing layers from one archive, from a stream, gzipped', async () => {
    const engine = await newEngine(true);
    const a = await skopeoArchive('docker-archive', threeLayout, 'three:1');
    const to = await newEngine(true);
    await to.images.load(a);
    await to.images.load(await skopeoArchive('docker-archive', twoLayout, 'two:1'));
    const both = new PassThrough();
    const chunks: Buffer[] = [];
    both.on('data', (c: Buffer) => chunks.push(c));
    await to.images.save(['three:1', 'two:1'], both);
    const gz = gzipSync(Buffer.concat(chunks));
    const loaded = await engine.images.load(Readable.from([gz.subarray(0, 1000), gz.subarray(1000)]));
    expect(loaded.map((i) => i.repoTags[0])).toEqual(['three:1', 'two:1']);
    expect(readdirSync(join(engine.root, 'layers')).filter((d) => /^[a-f0-9]{64}$/.test(d))).toHaveLength(3);
  });

  it('saves to a stream and rejects what it cannot save', async () => {
    const engine = await newEngine();
    const out = file('stream.tar');
    await engine.images.save(['busybox'], createWriteStream(out));
    expect((await engine.images.load(out))[0]!.id).toBe(engine.images.inspect('busybox').id);
    await expect(engine.images.save(['nothing:1'], file('x.tar'))).rejects.toBeInstanceOf(ImageNotFoundError);
    await expect(engine.images.save([], file('x.tar'))).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.images.save(['busybox'], file('x.tar'), { format: 'zip' as never })).rejects.toBeInstanceOf(InvalidOptionError);
    // A destination that fails half-way fails the save (and does not hang it).
    let written = 0;
    const failing = new Writable({
      write(chunk: Buffer, _enc, cb) {
        written += chunk.length;
        cb(written > 100_000 ? new Error('disk full') : null);
      },
    });
    await expect(engine.images.save(['busybox'], failing)).rejects.toThrow('disk full');
    const aborted = file('aborted.tar');
    await expect(engine.images.save(['busybox'], aborted, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortedError);
    expect(existsSync(aborted)).toBe(false);
    expect(readdirSync(work).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });
});

describe('bad archives', () => {
  /** Loads `archive` into a store that has busybox, expecting `error` and no change to the store. */
  async function refused(archive: Buffer | string, error: new (...args: never[]) => Error, message?: RegExp): Promise<void> {
    const engine = await newEngine();
    const before = storeState(engine);
    const source = typeof archive === 'string' ? archive : Readable.from([archive]);
    const err = await engine.images.load(source).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(error);
    if (message) expect((err as Error).message).toMatch(message);
    expect(storeState(engine)).toEqual(before);
  }

  /** A docker-archive with one image of the given layer tars. */
  async function dockerArchive(layers: Buffer[], options: { layerNames?: string[]; diffIds?: string[] } = {}): Promise<Buffer> {
    const config = Buffer.from(JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: { type: 'layers', diff_ids: options.diffIds ?? layers.map((l) => sha256(l)) },
    }));
    const names = options.layerNames ?? layers.map((_, i) => `l${i}/layer.tar`);
    return tarOf([
      { name: 'manifest.json', data: JSON.stringify([{ Config: `${sha256(config).slice(7)}.json`, RepoTags: ['bad:1'], Layers: names }]) },
      { name: `${sha256(config).slice(7)}.json`, data: config },
      ...layers.map((l, i) => ({ name: `l${i}/layer.tar`, data: l })),
    ]);
  }
  const goodLayer = () => tarOf([{ name: 'etc/ok', data: 'ok\n' }]);

  it('refuses input that is not a tar', async () => {
    await refused(Buffer.from('this is not a tar archive at all, just some text that goes on and on '.repeat(20)), InvalidArchiveError, /not a readable tar/);
    await refused(gzipSync(Buffer.alloc(100, 7)), InvalidArchiveError);
    await refused(Buffer.alloc(0), InvalidArchiveError);
  });

  it('refuses an archive with neither manifest.json nor index.json', async () => {
    await refused(await tarOf([{ name: 'hello.txt', data: 'hi' }]), InvalidArchiveError, /neither manifest.json/);
  });

  it('refuses a manifest naming a missing layer, or a layer outside the archive', async () => {
    const layer = await goodLayer();
    await refused(await dockerArchive([layer], { layerNames: ['nowhere/layer.tar'] }), InvalidArchiveError, /not in the archive/);
    await refused(await dockerArchive([layer], { layerNames: ['../../etc/passwd'] }), InvalidArchiveError, /outside the archive/);
    const viaLink = await tarOf([
      { name: 'manifest.json', data: JSON.stringify([{ Config: 'c.json', Layers: ['l/layer.tar'] }]) },
      { name: 'c.json', data: JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }) },
      { name: 'l/layer.tar', linkname: '../../../etc/passwd' },
    ]);
    await refused(viaLink, InvalidArchiveError, /outside the archive/);
  });

  it('refuses a layer whose entries escape it, and a layer that is not its DiffID', async () => {
    await refused(await dockerArchive([await tarOf([{ name: '../escape', data: 'x' }])]), UnsafeLayerError);
    const layer = await goodLayer();
    await refused(await dockerArchive([layer], { diffIds: [sha256('something else')] }), DigestMismatchError);
    // The second layer fails after the first was stored: the first goes again.
    await refused(await dockerArchive([layer, await tarOf([{ name: 'etc/../../x', data: 'x' }])]), UnsafeLayerError);
  });

  it('refuses a config whose name is not its digest, and malformed JSON', async () => {
    const layer = await goodLayer();
    const archive = await tarOf([
      { name: 'manifest.json', data: JSON.stringify([{ Config: `${'a'.repeat(64)}.json`, Layers: ['l0/layer.tar'] }]) },
      { name: `${'a'.repeat(64)}.json`, data: JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }) },
      { name: 'l0/layer.tar', data: layer },
    ]);
    await refused(archive, DigestMismatchError);
    await refused(await tarOf([{ name: 'manifest.json', data: '{nope' }]), InvalidArchiveError, /not JSON/);
    await refused(await tarOf([{ name: 'manifest.json', data: '[{"Config": 3}]' }]), InvalidArchiveError, /manifest.json/);
  });

  it('refuses an OCI layout whose blob does not match its digest or size', async () => {
    const good = await skopeoArchive('oci-archive', twoLayout, 'two:1');
    const files = new Map<string, Buffer>();
    for await (const { header, body } of readTar([readFileSync(good)])) {
      const chunks: Buffer[] = [];
      for await (const c of body) chunks.push(c);
      if (header.type === 'file') files.set(header.name, Buffer.concat(chunks));
    }
    const layerName = `blobs/sha256/${two.layers[1]!.digest.slice(7)}`;
    const tampered = Buffer.from(files.get(layerName)!);
    tampered.writeUInt8(tampered.readUInt8(tampered.length - 1) ^ 1, tampered.length - 1);
    const build = (change: Map<string, Buffer>) => tarOf([...files].map(([name, data]) => ({ name, data: change.get(name) ?? data })));
    await refused(await build(new Map([[layerName, tampered]])), DigestMismatchError);
    // The right bytes under the right name, but the descriptor lies about the size.
    const index = JSON.parse(files.get('index.json')!.toString()) as { manifests: Array<{ size: number }> };
    index.manifests[0]!.size += 1;
    await refused(await build(new Map([['index.json', Buffer.from(JSON.stringify(index))]])), InvalidArchiveError, /bytes/);
    await refused(await build(new Map([['oci-layout', Buffer.from('{}')]])), InvalidArchiveError, /imageLayoutVersion/);
  });

  it('refuses bad arguments and a missing file', async () => {
    const engine = await newEngine();
    await expect(engine.images.load(join(work, 'missing.tar'))).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.images.load(work)).rejects.toBeInstanceOf(InvalidOptionError);
    await expect(engine.images.load(42 as never)).rejects.toBeInstanceOf(InvalidOptionError);
    const archive = file('abort.tar');
    await engine.images.save(['busybox'], archive);
    await expect(engine.images.load(archive, { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(AbortedError);
    expect(readdirSync(join(engine.root, 'layers')).filter((d) => d.startsWith('tmp-'))).toEqual([]);
  });
});

describe('prune all and disk usage', () => {
  it('reports shared and reclaimable sizes, and prune({ all }) keeps only images containers use', async () => {
    const engine = await newEngine();
    await engine.images.load(await skopeoArchive('docker-archive', threeLayout, 'three:1'));
    await engine.images.load(await skopeoArchive('docker-archive', twoLayout, 'two:1'));
    const layerSize = (chainId: string) => (JSON.parse(readFileSync(join(engine.root, 'layers', chainId.slice(7), 'meta.json'), 'utf8')) as { size: number }).size;
    const threeImage = engine.images.list().find((i) => i.repoTags.includes('three:1'))!;
    const twoId = engine.images.inspect('two:1').id;
    const busybox = engine.images.inspect('busybox');
    const [base, hello, data] = threeImage.chainIds.map(layerSize) as [number, number, number];

    const c = await engine.create({ image: 'busybox', cmd: ['true'] });
    const usage = engine.images.diskUsage();
    expect(usage).toMatchObject({ count: 3, active: 1, size: busybox.size + base + hello + data, sharedSize: base + hello, reclaimable: base + hello + data });
    expect(usage.blobSize).toBeGreaterThan(0);
    const byTag = (tag: string) => usage.images.find((i) => i.repoTags.includes(tag))!;
    expect(byTag('three:1')).toMatchObject({ size: base + hello + data, sharedSize: base + hello, uniqueSize: data, containers: 0 });
    expect(byTag('two:1')).toMatchObject({ size: base + hello, sharedSize: base + hello, uniqueSize: 0, containers: 0 });
    expect(byTag('busybox:latest')).toMatchObject({ size: busybox.size, sharedSize: 0, uniqueSize: busybox.size, containers: 1 });

    // Plain prune leaves tagged images; prune({ all }) removes all but the one in use.
    await engine.images.tag('two:1', 'two:extra');
    expect((await engine.images.prune()).deleted).toEqual([]);
    const pruned = await engine.images.prune({ all: true });
    expect(pruned.deleted.sort()).toEqual([threeImage.id, twoId].sort());
    expect(pruned.untagged.sort()).toEqual(['three:1', 'two:1', 'two:extra']);
    expect(pruned.deletedLayers).toHaveLength(3);
    expect(engine.images.list().map((i) => i.repoTags)).toEqual([['busybox:latest']]);
    // Layers, configs and the loaded layers' blobs are gone: what is left is busybox's.
    expect(readdirSync(join(engine.root, 'layers')).filter((d) => /^[a-f0-9]{64}$/.test(d))).toEqual(busybox.rootfs.diff_ids.map((d) => d.slice(7)));
    expect(readdirSync(join(engine.root, 'blobs/sha256'))).toEqual([busybox.id.slice(7)]);
    expect(engine.images.diskUsage()).toMatchObject({ count: 1, active: 1, size: busybox.size, sharedSize: 0, reclaimable: 0 });

    await c.remove();
    expect((await engine.images.prune({ all: true })).deleted).toEqual([busybox.id]);
    expect(engine.images.diskUsage()).toMatchObject({ count: 0, active: 0, size: 0, reclaimable: 0, blobSize: 0, images: [] });
    await expect(engine.images.prune({ bogus: 1 } as never)).rejects.toBeInstanceOf(InvalidOptionError);
  });
});

// --- helpers ------------------------------------------------------------------

/** `skopeo copy` of a layout into a new archive of `transport`, named `name`. */
async function skopeoArchive(transport: 'docker-archive' | 'oci-archive', source: string, name: string): Promise<string> {
  const out = file(`${transport}.tar`);
  await skopeo(['copy', '--quiet', source, `${transport}:${out}:${name}`]);
  return out;
}

/** One file's content from a tar archive on disk. */
async function extract(archive: string, name: string): Promise<string> {
  const { stdout } = await run('tar', ['-xOf', archive, name], { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

