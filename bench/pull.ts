/**
 * Pull speed, side by side with the peers and the floors, in one run, from a
 * registry on loopback:
 *   - dockless: `engine.images.pull`, into a fresh engine root each time
 *   - `docker pull` (dockerd on unix:///tmp/peers/docker.sock) and
 *     `podman pull`, when installed
 *   - floors for the big image's big layer: Node's gunzip alone of the blob
 *     file (zlib's default 16 KiB chunks, and 1 MiB chunks), and the raw
 *     transfer (a fetch of the blob, read to nowhere)
 * Images (see pull-images.ts) are built once and cached. The registry is the
 * peers' one on 127.0.0.1:5000 when ../shared/peers/setup.sh started it,
 * else Debian's docker-registry started here on a free loopback port.
 *
 * Every tool first pulls the image once untimed (warming caches), then run i
 * of every tool pulls variant i of the image (the same content under new
 * digests, see variantsOf), the tools taking turns, each run after a `sync`.
 * Nothing is deleted until the end: on ext4 without a journal (as on this
 * VM) creating files is slow for minutes after many were deleted (the inode
 * allocator steps over recently freed inodes one by one), so a run after an
 * `rmi` would pay for it. For the same reason, on such a file system the
 * benchmark first waits BENCH_SETTLE seconds after a `sync`.
 * Prints medians and ratios. Not a test.
 *
 *   npm run bench:pull      BENCH_RUNS=3  BENCH_IMAGES=small,big  BENCH_TOOLS=dockless,docker,podman,floors
 */
import { spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGunzip } from 'node:zlib';
import { Engine } from '../src/index.js';
import { startRegistry, type RegistryFixture } from '../test/fixtures/registry.js';
import { benchImages, IMAGES_VERSION, variantsOf, type BenchImage } from './pull-images.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SETTLE_S = Number(process.env.BENCH_SETTLE ?? 60);
const CACHE = process.env.BENCH_IMAGE_CACHE ?? '/var/tmp/dockless-bench-images';
const IMAGES = (process.env.BENCH_IMAGES ?? 'big,small').split(',');
const TOOLS = new Set((process.env.BENCH_TOOLS ?? 'dockless,docker,podman,floors').split(','));
const WORK_PARENT = '/var/tmp';
const DOCKER_SOCK = '/tmp/peers/docker.sock';
const PEERS_REGISTRY = '127.0.0.1:5000';

const log = (s: string) => console.error(`# ${s}`);

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.trim() || r.error?.message || `exit ${r.status}`}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

/** True when `path` is on ext4 without a journal (see the module comment). */
function ext4WithoutJournal(path: string): boolean {
  let best: { point: string; dev: string; type: string } | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    const point = pre?.split(' ')[4];
    const [type, source] = post?.split(' ') ?? [];
    if (!point || !type || !source) continue;
    const under = path === point || path.startsWith(point === '/' ? '/' : `${point}/`);
    if (under && (!best || point.length > best.point.length)) best = { point, dev: source.replace(/^\/dev\//, ''), type };
  }
  return best?.type === 'ext4' && existsSync(`/proc/fs/ext4/${best.dev}`) && !existsSync(`/proc/fs/jbd2/${best.dev}-8`);
}

interface Result {
  image: string;
  name: string;
  times: number[];
}

/** One of the tools compared. */
interface Puller {
  name: string;
  /** Untimed, before each pull. */
  prepare?(): Promise<void>;
  pull(ref: string): Promise<void> | void;
  /** Removes what it pulled: at the end, and leftovers of an interrupted run at the start. */
  remove?(): void;
  close?(): Promise<void>;
}

/** dockless: a fresh engine root per pull, kept until the end. */
function dockless(work: string): Puller {
  let n = 0;
  let engine: Engine | undefined;
  return {
    name: 'dockless engine.images.pull',
    async prepare() {
      await engine?.close();
      engine = await Engine.open({ root: join(work, `engine-${n++}`) });
    },
    async pull(ref) {
      await engine!.images.pull(ref);
    },
    close: async () => engine?.close(),
  };
}

function docker(refs: string[]): Puller {
  const d = ['-H', `unix://${DOCKER_SOCK}`];
  return {
    name: 'docker pull',
    pull: (ref) => run('docker', [...d, 'pull', '-q', ref]),
    remove: () => void spawnSync('docker', [...d, 'rmi', '-f', ...refs], { stdio: 'ignore' }),
  };
}

function podman(refs: string[]): Puller {
  return {
    name: 'podman pull',
    pull: (ref) => run('podman', ['pull', '-q', '--tls-verify=false', ref]),
    remove: () => void spawnSync('podman', ['rmi', '-f', ...refs], { stdio: 'ignore' }),
  };
}

/** One untimed pull of `warm`, then RUNS timed pulls, run i of every tool pulling `refs[i]`, the tools taking turns. */
async function measure(image: string, tools: Puller[], warm: string, refs: string[]): Promise<Result[]> {
  const results = tools.map((t) => ({ image, name: t.name, times: [] as number[] }));
  for (let i = -1; i < RUNS; i++) {
    for (const [k, tool] of tools.entries()) {
      await tool.prepare?.();
      run('sync', []);
      const t0 = performance.now();
      await tool.pull(i < 0 ? warm : refs[i]!);
      if (i >= 0) results[k]!.times.push(performance.now() - t0);
    }
  }
  for (const r of results) log(`${image}: ${r.name}: ${r.times.map((t) => (t / 1000).toFixed(2)).join(' ')} s`);
  return results;
}

/** Times `once` RUNS times after a warm-up run. */
async function measureFloor(image: string, name: string, once: () => Promise<void>): Promise<Result> {
  const times: number[] = [];
  for (let i = -1; i < RUNS; i++) {
    const t0 = performance.now();
    await once();
    if (i >= 0) times.push(performance.now() - t0);
  }
  log(`${image}: ${name}: ${times.map((t) => (t / 1000).toFixed(2)).join(' ')} s`);
  return { image, name, times };
}

async function usableRegistry(): Promise<{ host: string; fixture?: RegistryFixture }> {
  try {
    const r = await fetch(`http://${PEERS_REGISTRY}/v2/`);
    await r.body?.cancel();
    if (r.ok) return { host: PEERS_REGISTRY };
  } catch {
    /* not running */
  }
  log('no registry on 127.0.0.1:5000 (../shared/peers/setup.sh starts one): starting docker-registry here');
  const fixture = await startRegistry();
  return { host: fixture.host, fixture };
}

async function gunzipFloor(path: string, chunkSize?: number): Promise<void> {
  await pipeline(
    createReadStream(path, { highWaterMark: 1 << 20 }),
    createGunzip(chunkSize ? { chunkSize } : {}),
    new Writable({ highWaterMark: 1 << 20, write: (_chunk, _enc, cb) => cb() }),
  );
}

async function transferFloor(host: string, repo: string, digest: string): Promise<void> {
  const r = await fetch(`http://${host}/v2/${repo}/blobs/${digest}`);
  if (!r.ok || !r.body) throw new Error(`GET blob ${digest}: ${r.status}`);
  const reader = r.body.getReader();
  while (!(await reader.read()).done);
}

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function push(image: BenchImage, ref: string): void {
  run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--preserve-digests', `oci:${image.dir}:latest`, `docker://${ref}`]);
}

async function main(): Promise<void> {
  const images = (await benchImages(CACHE, log)).filter((i) => IMAGES.includes(i.name)).sort((a, b) => IMAGES.indexOf(a.name) - IMAGES.indexOf(b.name));
  const { host, fixture } = await usableRegistry();
  const work = mkdtempSync(join(WORK_PARENT, 'dockless-bench-pull-'));
  const results: Result[] = [];
  const useDocker = TOOLS.has('docker') && has('docker') && existsSync(DOCKER_SOCK);
  const usePodman = TOOLS.has('podman') && has('podman');
  if (TOOLS.has('docker') && !useDocker) log('dockerd not running on /tmp/peers/docker.sock: docker skipped (../shared/peers/setup.sh)');
  if (TOOLS.has('podman') && !usePodman) log('podman not installed: skipped (../shared/peers/setup.sh)');
  const all: Puller[] = [];
  try {
    const prepared: Array<{ image: BenchImage; repo: string; base: string; refs: string[]; tools: Puller[] }> = [];
    for (const image of images) {
      const repo = `dockless-bench/${image.name}`;
      const base = `${host}/${repo}:${IMAGES_VERSION}`;
      const variants = await variantsOf(image, RUNS, log);
      const refs = variants.map((_, i) => `${base}-v${i}`);
      log(`pushing ${image.name} and ${RUNS} variants to ${host}/${repo}`);
      push(image, base);
      variants.forEach((v, i) => push(v, refs[i]!));
      const tools: Puller[] = [];
      if (TOOLS.has('dockless')) tools.push(dockless(work));
      if (useDocker) tools.push(docker([base, ...refs]));
      if (usePodman) tools.push(podman([base, ...refs]));
      for (const t of tools) t.remove?.(); // leftovers of an interrupted run
      all.push(...tools);
      prepared.push({ image, repo, base, refs, tools });
    }
    if (ext4WithoutJournal(work)) {
      log(`${WORK_PARENT} is ext4 without a journal: waiting ${SETTLE_S} s for recently freed inodes to be reusable (BENCH_SETTLE)`);
      run('sync', []);
      await sleep(SETTLE_S * 1000);
    }
    for (const { image, repo, base, refs, tools } of prepared) {
      results.push(...(await measure(image.name, tools, base, refs)));
      if (TOOLS.has('floors') && image.name === 'big') {
        const layer = image.layers.reduce((a, b) => (b.size > a.size ? b : a));
        results.push(await measureFloor(image.name, 'floor: gunzip of the big layer (zlib defaults)', () => gunzipFloor(layer.path)));
        results.push(await measureFloor(image.name, 'floor: gunzip of the big layer (1 MiB chunks)', () => gunzipFloor(layer.path, 1 << 20)));
        results.push(await measureFloor(image.name, 'floor: transfer of the big layer (fetch)', () => transferFloor(host, repo, layer.digest)));
      }
    }
  } finally {
    for (const t of all) await t.close?.();
    for (const t of all) t.remove?.();
    rmSync(work, { recursive: true, force: true });
    await fixture?.stop();
  }
  report(images, results);
}

function report(images: BenchImage[], results: Result[]): void {
  console.log(`\npull from a registry on loopback, median of ${RUNS} runs (each of a new variant of the image, after an untimed pull):`);
  for (const image of images) {
    const compressed = image.layers.reduce((s, l) => s + l.size, 0);
    const tar = image.layers.reduce((s, l) => s + l.tarSize, 0);
    const big = image.layers.reduce((a, b) => (b.size > a.size ? b : a));
    console.log(
      `\n${image.name} (${image.origin}): ${image.layers.length} layers, ${mb(compressed)} compressed, ${mb(tar)} of tar` +
        (image.name === 'big' ? `; big layer ${mb(big.size)} -> ${mb(big.tarSize)}` : ''),
    );
    const mine = results.filter((r) => r.image === image.name);
    for (const r of mine) console.log(`  ${r.name.padEnd(50)} ${secs(median(r.times)).padStart(9)}   (min ${secs(Math.min(...r.times))})`);
    const dl = mine.find((r) => r.name.startsWith('dockless'));
    if (!dl) continue;
    const d = median(dl.times);
    for (const r of mine) {
      if (r === dl || r.name.includes('transfer')) continue;
      console.log(`  dockless / ${r.name.replace(/^floor: /, '').padEnd(40)} ${(d / median(r.times)).toFixed(2)}x`);
    }
  }
}

await main();
