/**
 * Container start latency, side by side with the peers, in one run:
 *   - dockless: engine.run of a busybox image running `true`, network none, waited and removed
 *   - runc run of the same root filesystem (a bundle made here from it)
 *   - podman run --rm --network none, and docker run --rm --network none, when installed
 *     (../shared/peers/setup.sh sets them up; the registry image there is the same busybox).
 * Prints p50/p90 per runtime and the ratios to dockless. Not a test: no assertions.
 *
 *   npm run bench:start            (BENCH_RUNS=200 by default)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../src/index.js';
import { makeBusyboxRootfs } from '../examples/busybox-rootfs.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 200);
const PEER_RUNS = Number(process.env.BENCH_PEER_RUNS ?? Math.min(RUNS, 50));
const DOCKER_SOCK = '/tmp/peers/docker.sock';

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Result {
  name: string;
  runs: number;
  p50: number;
  p90: number;
}

async function measure(name: string, runs: number, once: () => Promise<void> | void): Promise<Result> {
  for (let i = 0; i < Math.min(5, runs); i++) await once(); // warm caches
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await once();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { name, runs, p50: percentile(times, 50), p90: percentile(times, 90) };
}

function runcBundle(dir: string, rootfs: string): string {
  const bundle = join(dir, 'bundle');
  mkdirSync(bundle, { recursive: true });
  execFileSync('runc', ['spec', '--bundle', bundle]);
  const spec = JSON.parse(execFileSync('cat', [join(bundle, 'config.json')], { encoding: 'utf8' }));
  spec.root = { path: rootfs, readonly: false };
  spec.process.terminal = false;
  spec.process.args = ['/bin/true'];
  spec.process.rlimits = [];
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  return bundle;
}

const work = mkdtempSync('/tmp/dockless-bench-');
const results: Result[] = [];
try {
  const rootfs = makeBusyboxRootfs(join(work, 'rootfs'));
  await using engine = await Engine.open({ root: join(work, 'root') });
  await engine.images.import(rootfs, { ref: 'bench/busybox:latest' });

  results.push(
    await measure('dockless run --rm (network none)', RUNS, async () => {
      const c = await engine.run({ image: 'bench/busybox', cmd: ['true'], wait: true });
      await c.remove();
    }),
  );
  if (has('runc')) {
    const bundle = runcBundle(work, rootfs);
    let n = 0;
    results.push(
      await measure('runc run', RUNS, () => {
        const r = spawnSync('runc', ['run', '--bundle', bundle, `dockless-bench-${process.pid}-${n++}`], { stdio: 'ignore' });
        if (r.status !== 0) throw new Error('runc run failed');
      }),
    );
  } else console.log('runc not installed: skipped (../shared/peers/setup.sh installs it)');

  const peerImage = '127.0.0.1:5000/busybox:latest';
  if (has('podman') && spawnSync('podman', ['image', 'exists', 'localhost:5000/busybox:latest']).status === 0) {
    results.push(
      await measure('podman (runc) run --rm --network none', PEER_RUNS, () => {
        const r = spawnSync('podman', ['--runtime', 'runc', 'run', '--rm', '--network', 'none', 'localhost:5000/busybox:latest', 'true'], { stdio: 'ignore' });
        if (r.status !== 0) throw new Error('podman run failed');
      }),
    );
  } else console.log('podman or its busybox image missing: skipped (run ../shared/peers/setup.sh)');

  if (has('docker') && existsSync(DOCKER_SOCK)) {
    results.push(
      await measure('docker run --rm --network none', PEER_RUNS, () => {
        const r = spawnSync('docker', ['-H', `unix://${DOCKER_SOCK}`, 'run', '--rm', '--network', 'none', peerImage, 'true'], { stdio: 'ignore' });
        if (r.status !== 0) throw new Error('docker run failed');
      }),
    );
  } else console.log('dockerd not running on /tmp/peers/docker.sock: skipped (run ../shared/peers/setup.sh)');
} finally {
  rmSync(work, { recursive: true, force: true });
}

const base = results[0]!;
console.log(`\ncontainer start of \`true\`, ${RUNS} runs (peers ${PEER_RUNS}):`);
console.log('runtime'.padEnd(42), 'p50 ms'.padStart(8), 'p90 ms'.padStart(8), 'p50 / dockless'.padStart(16));
for (const r of results) {
  console.log(r.name.padEnd(42), r.p50.toFixed(2).padStart(8), r.p90.toFixed(2).padStart(8), `${(r.p50 / base.p50).toFixed(2)}x`.padStart(16));
}
