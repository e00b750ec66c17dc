/**
 * The images `bench/pull.ts` pulls, built once and kept as OCI image layouts
 * under a cache directory keyed by {@link IMAGES_VERSION}:
 *
 * - `small`: five small layers from host files (a busybox base, zoneinfo,
 *   perl modules, a layer of whiteouts, an opaque directory, a fifo, hard
 *   links and extended attributes, and a config layer), a few MB in all;
 * - `big`: Debian 12 with PostgreSQL 15 and PostGIS 3, made with debootstrap
 *   and apt-get in a chroot (about 700 MB unpacked, one ~235 MB gzip layer),
 *   plus an entrypoint layer and a clean-up layer of whiteouts. Where
 *   debootstrap cannot reach a Debian mirror, the big layer is host
 *   directories from /usr instead, of about the same size.
 *
 * Layers are tarred by GNU tar (numeric owners, xattrs) and gzipped by zlib at
 * its default level, as `docker build` does. A build happens in a temporary
 * directory inside the cache, in a private mount namespace (`unshare -m`), so
 * its /proc mount dies with it, and is renamed into place only when complete.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  createWriteStream,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  writeSync,
  createReadStream,
} from 'node:fs';
import { join } from 'node:path';
import { Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip, gzipSync } from 'node:zlib';
import { encodeTarHeader, tarPadding } from '../src/image/tar.js';

/** Change it whenever what is built changes: the cache is keyed by it. */
export const IMAGES_VERSION = 'bookworm-pg15-postgis3-v1';
const MIRROR = process.env.BENCH_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';

/** A blob in a layout. */
export interface LayoutBlob {
  digest: string;
  size: number;
  mediaType: string;
}

/** One built image: its layout directory and what is in it. */
export interface BenchImage {
  name: 'small' | 'big';
  /** OCI image layout; `skopeo copy oci:<dir>:latest ...` reads it. */
  dir: string;
  layers: Array<LayoutBlob & { diffId: string; tarSize: number; path: string }>;
  /** How the big layer was made: `debootstrap` or `host /usr`. */
  origin: string;
}

interface Meta {
  version: string;
  images: BenchImage[];
}

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})`);
}

/** The cached images, built first when the cache lacks them. */
export async function benchImages(cacheRoot: string, log: (s: string) => void): Promise<BenchImage[]> {
  const dir = join(cacheRoot, IMAGES_VERSION);
  const metaPath = join(dir, 'meta.json');
  if (existsSync(metaPath)) return (JSON.parse(readFileSync(metaPath, 'utf8')) as Meta).images;
  mkdirSync(cacheRoot, { recursive: true });
  const work = join(cacheRoot, `${IMAGES_VERSION}.tmp-${process.pid}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work);
  try {
    log(`building the benchmark images into ${dir} (once)`);
    const small = await buildSmall(work, log);
    const big = await buildBig(work, log);
    const images = [small, big].map((i) => ({ ...i, dir: join(dir, i.name), layers: i.layers.map((l) => ({ ...l, path: l.path.replace(work, dir) })) }));
    for (const name of readdirSync(work)) if (name !== 'small' && name !== 'big') rmSync(join(work, name), { recursive: true, force: true });
    writeFileSync(join(work, 'meta.json'), JSON.stringify({ version: IMAGES_VERSION, images } satisfies Meta, null, 2));
    rmSync(dir, { recursive: true, force: true });
    renameSync(work, dir);
    return images;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// --- layers and layouts ---------------------------------------------------------

/** Counts and hashes what passes. */
function hashing(hash: ReturnType<typeof createHash>, counter: { n: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      counter.n += chunk.length;
      cb(null, chunk);
    },
  });
}

/** A gzip layer blob from `tar -c` of `paths` under `root`, written into the layout's blobs. */
async function tarLayer(layout: string, root: string, paths: string[], extra: string[] = []): Promise<BenchImage['layers'][number]> {
  const blobs = join(layout, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const tmp = join(blobs, `.tmp-${process.pid}`);
  const tar = spawn('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '--sort=name', ...extra, '-C', root, '-cf', '-', '--', ...paths], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => tar.on('close', resolve));
  const diff = createHash('sha256');
  const blob = createHash('sha256');
  const tarSize = { n: 0 };
  const size = { n: 0 };
  await pipeline(tar.stdout, hashing(diff, tarSize), createGzip(), hashing(blob, size), createWriteStream(tmp));
  const code = await exited;
  if (code !== 0) throw new Error(`tar of ${paths.join(' ')} in ${root} failed (exit ${code})`);
  const digest = `sha256:${blob.digest('hex')}`;
  const path = join(blobs, digest.slice(7));
  renameSync(tmp, path);
  return { digest, size: size.n, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffId: `sha256:${diff.digest('hex')}`, tarSize: tarSize.n, path };
}

function writeBlob(layout: string, bytes: Buffer, mediaType: string): LayoutBlob {
  const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
  writeFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), bytes);
  return { digest, size: bytes.length, mediaType };
}

const ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' };

/** Writes config, manifest and index.json (tag `latest`) for `layers`. */
function finishLayout(layout: string, layers: BenchImage['layers'], config: Record<string, unknown>): void {
  const configBlob = writeBlob(
    layout,
    Buffer.from(JSON.stringify({
      architecture: ARCH[process.arch] ?? process.arch,
      os: 'linux',
      created: new Date().toISOString(),
      config,
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map(() => ({ created_by: 'dockless bench/pull-images.ts' })),
    })),
    'application/vnd.oci.image.config.v1+json',
  );
  const descriptor = (b: LayoutBlob) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size });
  const manifest = writeBlob(
    layout,
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: descriptor(configBlob), layers: layers.map(descriptor) })),
    'application/vnd.oci.image.manifest.v1+json',
  );
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ ...descriptor(manifest), annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }),
  );
}

// --- the small image --------------------------------------------------------------

async function buildSmall(work: string, log: (s: string) => void): Promise<BenchImage> {
  log('small image: layers from host files');
  const layout = join(work, 'small');
  const stage = join(work, 'small-stage');
  const layers: BenchImage['layers'] = [];

  const base = join(stage, 'base');
  mkdirSync(join(base, 'bin'), { recursive: true });
  mkdirSync(join(base, 'etc'));
  mkdirSync(join(base, 'tmp'), { mode: 0o1777 });
  writeFileSync(join(base, 'bin', 'busybox'), readFileSync('/bin/busybox'), { mode: 0o755 });
  const applets = spawnSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).stdout.split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) symlinkSync('busybox', join(base, 'bin', a));
  writeFileSync(join(base, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  writeFileSync(join(base, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
  layers.push(await tarLayer(layout, base, ['.']));

  // Host data as layers of many small files (what makes per-entry costs show).
  const hostTrees = ['usr/share/zoneinfo', 'usr/share/perl5'].filter((p) => existsSync(`/${p}`));
  for (const tree of hostTrees) layers.push(await tarLayer(layout, '/', [tree]));

  // Whiteouts, an opaque directory, a fifo, hard links and extended attributes.
  const changes = join(stage, 'changes');
  mkdirSync(join(changes, 'etc'), { recursive: true });
  mkdirSync(join(changes, 'bin'));
  for (const a of applets.slice(0, 20)) writeFileSync(join(changes, 'bin', `.wh.${a}`), '');
  if (hostTrees[0]) {
    const zone = join(changes, hostTrees[0]);
    mkdirSync(zone, { recursive: true });
    writeFileSync(join(zone, '.wh..wh..opq'), '');
    writeFileSync(join(zone, 'UTC'), 'TZif-placeholder\n');
  }
  writeFileSync(join(changes, 'etc', 'app.conf'), 'threads = 4\n'.repeat(100));
  linkSync(join(changes, 'etc', 'app.conf'), join(changes, 'etc', 'app.conf.link'));
  sh('mkfifo', [join(changes, 'etc', 'app.fifo')]);
  for (let i = 0; i < 50; i++) {
    const f = join(changes, 'etc', `tagged-${i}`);
    writeFileSync(f, `file ${i}\n`);
    sh('setfattr', ['-n', 'user.bench', '-v', `value-${i}`, f]);
  }
  layers.push(await tarLayer(layout, changes, ['.']));

  const config = join(stage, 'config');
  mkdirSync(join(config, 'srv', 'app'), { recursive: true });
  writeFileSync(join(config, 'srv', 'app', 'start.sh'), '#!/bin/sh\nexec echo ready\n', { mode: 0o755 });
  layers.push(await tarLayer(layout, config, ['.']));

  finishLayout(layout, layers, { Cmd: ['/srv/app/start.sh'], Env: ['PATH=/bin'] });
  rmSync(stage, { recursive: true, force: true });
  return { name: 'small', dir: layout, layers, origin: 'host files' };
}

// --- the big image ----------------------------------------------------------------

/**
 * Runs `script` with sh in a private mount namespace (mounts it makes cannot
 * outlive it), its output into `logFile`, whose end is shown if it fails.
 */
function privately(script: string, logFile: string, log: (s: string) => void): boolean {
  const out = openSync(logFile, 'a');
  try {
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-ec', script], { stdio: ['ignore', out, out] });
    if (r.status === 0) return true;
    log(`failed (${r.error?.message ?? `exit ${r.status}`}); the end of ${logFile}:`);
    for (const line of readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-15)) log(`  ${line}`);
    return false;
  } finally {
    closeSync(out);
  }
}

/** Debian 12 + PostgreSQL 15 + PostGIS 3 in `root`; false when debootstrap or apt fail (no mirror). */
function debianPostgres(root: string, logFile: string, log: (s: string) => void): boolean {
  if (spawnSync('sh', ['-c', 'command -v debootstrap']).status !== 0) {
    log('debootstrap is not installed (apt-get install debootstrap)');
    return false;
  }
  log(`big image: debootstrap bookworm from ${MIRROR}, then apt-get install postgresql postgis in a chroot`);
  if (!privately(`debootstrap --variant=minbase bookworm '${root}' '${MIRROR}'`, logFile, log)) return false;
  // No services started by maintainer scripts; DNS as the host's.
  writeFileSync(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  writeFileSync(join(root, 'etc/resolv.conf'), readFileSync('/etc/resolv.conf'));
  const install = [
    `mount -t proc proc '${root}/proc'`,
    `chroot '${root}' env DEBIAN_FRONTEND=noninteractive LC_ALL=C apt-get install -y -q --no-install-recommends ` +
      'postgresql postgresql-15-postgis-3 postgresql-15-postgis-3-scripts',
    `chroot '${root}' apt-get clean`,
  ].join(' && ');
  if (!privately(install, logFile, log)) return false;
  rmSync(join(root, 'var/lib/apt/lists'), { recursive: true, force: true });
  mkdirSync(join(root, 'var/lib/apt/lists/partial'), { recursive: true });
  writeFileSync(join(root, 'etc/resolv.conf'), '');
  return true;
}

/** Host directories from /usr adding up to about `budget` bytes: the fallback big layer. */
function hostUsrPaths(budget: number): string[] {
  const candidates = ['usr/bin', 'usr/sbin', 'usr/lib/x86_64-linux-gnu', 'usr/lib/aarch64-linux-gnu', 'usr/share/locale', 'usr/include', 'usr/share/doc', 'usr/lib/python3'];
  const picked: string[] = [];
  let total = 0;
  for (const p of candidates) {
    if (!existsSync(`/${p}`)) continue;
    const du = spawnSync('du', ['-sb', `/${p}`], { encoding: 'utf8' });
    const size = Number(du.stdout.split('\t')[0]);
    if (!Number.isFinite(size) || (total > 0 && total + size > budget * 1.2)) continue;
    picked.push(p);
    total += size;
    if (total >= budget) break;
  }
  return picked;
}

async function buildBig(work: string, log: (s: string) => void): Promise<BenchImage> {
  const layout = join(work, 'big');
  const root = join(work, 'big-root');
  mkdirSync(root);
  const layers: BenchImage['layers'] = [];
  let origin = 'debootstrap';
  if (debianPostgres(root, join(work, 'build.log'), log)) {
    log('big image: packing the root filesystem layer');
    layers.push(await tarLayer(layout, root, ['.'], ['--exclude=./dev/*', '--exclude=./proc/*', '--exclude=./sys/*']));
  } else {
    origin = 'host /usr';
    const paths = hostUsrPaths(700 << 20);
    log(`big image: debootstrap failed; the big layer is host ${paths.map((p) => `/${p}`).join(' ')}`);
    layers.push(await tarLayer(layout, '/', paths));
  }

  // An entrypoint layer, and a clean-up layer of whiteouts over the first.
  const stage = join(work, 'big-stage');
  const entry = join(stage, 'entry');
  mkdirSync(join(entry, 'usr/local/bin'), { recursive: true });
  mkdirSync(join(entry, 'var/run/postgresql'), { recursive: true, mode: 0o2777 });
  writeFileSync(join(entry, 'usr/local/bin/docker-entrypoint.sh'), '#!/bin/sh\nexec "$@"\n', { mode: 0o755 });
  layers.push(await tarLayer(layout, entry, ['.']));

  const cleanup = join(stage, 'cleanup');
  const docs = join(origin === 'debootstrap' ? root : '/', 'usr/share/doc');
  mkdirSync(join(cleanup, 'usr/share/doc'), { recursive: true });
  const docNames = existsSync(docs) ? readdirSync(docs).slice(0, 200) : [];
  for (const name of docNames) writeFileSync(join(cleanup, 'usr/share/doc', `.wh.${name}`), '');
  mkdirSync(join(cleanup, 'var/log'), { recursive: true });
  writeFileSync(join(cleanup, 'var/log/.wh..wh..opq'), '');
  layers.push(await tarLayer(layout, cleanup, ['.']));

  finishLayout(layout, layers, {
    Entrypoint: ['/usr/local/bin/docker-entrypoint.sh'],
    Cmd: ['postgres'],
    Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/postgresql/15/bin', 'PGDATA=/var/lib/postgresql/data'],
    User: 'postgres',
  });
  rmSync(stage, { recursive: true, force: true });
  rmSync(root, { recursive: true, force: true });
  return { name: 'big', dir: layout, layers, origin };
}

// --- variants -----------------------------------------------------------------------

/**
 * Copies of `image` that differ in every layer's digest and DiffID but not in
 * the work they take to pull: each layer blob gets a gzip member in front
 * holding one small tar entry (`/.dockless-bench-variant`), and gzip readers
 * read concatenated members as one stream. Each run of each tool pulls its
 * own variant, so no run finds layers of an earlier one and nothing has to
 * be deleted between runs (see bench/pull.ts). Built once, in one pass over
 * each layer for all of them, cached next to the image.
 */
export async function variantsOf(image: BenchImage, count: number, log: (s: string) => void): Promise<BenchImage[]> {
  const out: BenchImage[] = [];
  const missing: number[] = [];
  for (let i = 0; i < count; i++) {
    const meta = join(`${image.dir}-v${i}`, 'variant.json');
    if (existsSync(meta)) out[i] = JSON.parse(readFileSync(meta, 'utf8')) as BenchImage;
    else missing.push(i);
  }
  if (missing.length === 0) return out;
  log(`${image.name}: making variants ${missing.join(', ')} (once)`);
  const tmps = missing.map((i) => `${image.dir}-v${i}.tmp-${process.pid}`);
  try {
    const layers: Array<BenchImage['layers']> = missing.map(() => []);
    for (const layer of image.layers) {
      const made = await variantLayers(layer, missing, tmps, image.name);
      made.forEach((l, k) => layers[k]!.push(l));
    }
    const config = originalConfig(image.dir);
    missing.forEach((i, k) => {
      const dir = `${image.dir}-v${i}`;
      finishLayout(tmps[k]!, layers[k]!, config);
      const variant: BenchImage = { ...image, dir, layers: layers[k]!.map((l) => ({ ...l, path: l.path.replace(tmps[k]!, dir) })) };
      writeFileSync(join(tmps[k]!, 'variant.json'), JSON.stringify(variant));
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmps[k]!, dir);
      out[i] = variant;
    });
    return out;
  } finally {
    for (const tmp of tmps) rmSync(tmp, { recursive: true, force: true });
  }
}

/** The runtime config (`config` of the image config) of the image in `layout`. */
function originalConfig(layout: string): Record<string, unknown> {
  const blob = (digest: string) => JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)), 'utf8'));
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  const manifest = blob(index.manifests[0].digest);
  return blob(manifest.config.digest).config;
}

/** One layer's variants, for the variant numbers `which`, written into the layouts `dirs`. */
async function variantLayers(layer: BenchImage['layers'][number], which: number[], dirs: string[], name: string): Promise<Array<BenchImage['layers'][number]>> {
  const prefixes = which.map((i) => {
    const body = Buffer.from(`${name} variant ${i}\n`);
    return Buffer.concat([encodeTarHeader({ name: '.dockless-bench-variant', type: 'file', mode: 0o644, size: body.length }), body, tarPadding(body.length)]);
  });
  const members = prefixes.map((p) => gzipSync(p));
  const blobHashes = members.map((m) => createHash('sha256').update(m));
  const diffHashes = prefixes.map((p) => createHash('sha256').update(p));
  const fds = dirs.map((dir, k) => {
    mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
    const fd = openSync(join(dir, 'blobs', 'sha256', '.variant'), 'w');
    writeSync(fd, members[k]!);
    return fd;
  });
  try {
    const copy = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        blobHashes.forEach((h, k) => {
          h.update(chunk);
          writeSync(fds[k]!, chunk);
        });
        cb(null, chunk);
      },
    });
    const diff = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const h of diffHashes) h.update(chunk);
        cb();
      },
    });
    await pipeline(createReadStream(layer.path, { highWaterMark: 1 << 20 }), copy, createGunzip({ chunkSize: 1 << 20 }), diff);
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  return dirs.map((dir, k) => {
    const digest = `sha256:${blobHashes[k]!.digest('hex')}`;
    const path = join(dir, 'blobs', 'sha256', digest.slice(7));
    renameSync(join(dir, 'blobs', 'sha256', '.variant'), path);
    return {
      digest,
      size: members[k]!.length + layer.size,
      mediaType: layer.mediaType,
      diffId: `sha256:${diffHashes[k]!.digest('hex')}`,
      tarSize: prefixes[k]!.length + layer.tarSize,
      path,
    };
  });
}
