import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { findLeaks } from './helpers/leaks.js';

/**
 * Runs once around the whole suite: checks the prerequisites the tests need
 * (root, the native addon, busybox-static), and after the suite fails the run
 * if any mount, cgroup or container process was left behind.
 */
export function setup(): void {
  if (process.getuid?.() !== 0) throw new Error('the dockless test suite drives the kernel and must run as root');
  if (!existsSync('/bin/busybox')) throw new Error('busybox-static is missing: run scripts/bootstrap.sh');
  if (!existsSync(new URL('../build/Release/dockless.node', import.meta.url))) {
    execFileSync('npx', ['node-gyp', 'rebuild'], { stdio: 'inherit', cwd: new URL('..', import.meta.url) });
  }
  const before = findLeaks({ parents: true });
  if (before.length) console.warn(`leak check: state present before the suite:\n  ${before.join('\n  ')}`);
}

export async function teardown(): Promise<void> {
  // A killed PID namespace empties asynchronously: give the kernel a moment.
  let leaks = findLeaks({ parents: true });
  for (let i = 0; i < 20 && leaks.length; i++) {
    await new Promise((r) => setTimeout(r, 100));
    leaks = findLeaks({ parents: true });
  }
  if (leaks.length) {
    throw new Error(`the suite left kernel state behind:\n  ${leaks.join('\n  ')}`);
  }
}
