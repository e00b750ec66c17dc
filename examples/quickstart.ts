/**
 * The quickstart: make a small image from what this machine has (its static
 * busybox), run containers from it, and show what they print. Works offline.
 *
 *   npm run quickstart
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Engine } from '../src/index.js';
import { makeBusyboxRootfs } from './busybox-rootfs.js';

const root = process.env.DOCKLESS_ROOT ?? '/var/lib/dockless';
await using engine = await Engine.open({ root });

// 1. An image from a root filesystem directory, like `docker import`.
const dir = mkdtempSync('/tmp/dockless-quickstart-');
try {
  const image = await engine.images.import(makeBusyboxRootfs(join(dir, 'rootfs')), {
    ref: 'quickstart/busybox:latest',
    changes: ['CMD ["sh"]', 'ENV GREETING=hello'],
  });
  console.log(`imported ${image.repoTags[0]} (${image.id.slice(7, 19)})`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}

// 2. Run a command to completion and read its output (`docker run --rm`).
const t0 = performance.now();
const hello = await engine.run({
  image: 'quickstart/busybox',
  cmd: ['sh', '-c', 'echo "$GREETING from $(hostname), PID $$, as $(id -un)"; uname -sr'],
  hostname: 'quickstart',
  wait: true,
});
console.log(`ran in ${(performance.now() - t0).toFixed(1)} ms:`);
process.stdout.write(await hello.logs());
await hello.remove();

// 3. A long-running container with limits; exec into it; stop it.
const box = await engine.run({ image: 'quickstart/busybox', cmd: ['sleep', '600'], limits: { memory: '64m', cpus: 0.5, pids: 32 } });
const { stdout } = await box.exec(['sh', '-c', 'ps -o pid,comm; cat /proc/self/cgroup | head -3']);
console.log(`inside ${box.name}:\n${stdout}`);
const inspect = box.inspect();
console.log(`memory limit ${inspect.HostConfig.Memory / 2 ** 20} MiB, cpus ${inspect.HostConfig.NanoCpus / 1e9}, pids ${inspect.HostConfig.PidsLimit}`);
const exit = await box.stop({ timeout: 1 });
console.log(`stopped: exit ${exit.exitCode}${exit.signal ? ` (${exit.signal})` : ''}`);
await box.remove();
console.log('done: nothing left running.');
