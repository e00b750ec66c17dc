/**
 * The few synchronous cgroupfs operations both drivers share.
 *
 * Each write is exactly one write(2) on a fresh O_WRONLY fd (never O_CREAT or
 * O_TRUNC): cgroupfs parses every write on its own and has no files to create.
 * @internal
 * @module
 */

import * as fs from 'node:fs';
import { join } from 'node:path';
import { InvalidOptionError, SystemError, UnsupportedError } from '../../errors.js';

const { O_WRONLY } = fs.constants;

/** Turns a Node fs error into a SystemError that keeps the errno and names the file. */
export function toSystemError(err: unknown, syscall: string, detail: string): unknown {
  const e = err as NodeJS.ErrnoException;
  if (typeof e?.errno !== 'number') return err;
  return new SystemError(e.syscall ?? syscall, Math.abs(e.errno), detail);
}

/** Writes `value` to the cgroup file `path` in one write(2). */
export function writeFile(path: string, value: string): void {
  let fd: number;
  try {
    fd = fs.openSync(path, O_WRONLY);
  } catch (err) {
    throw toSystemError(err, 'open', path);
  }
  try {
    fs.writeSync(fd, value);
  } catch (err) {
    throw toSystemError(err, 'write', `${JSON.stringify(value)} to ${path}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads a cgroup file as text, trimmed. */
export function readFile(path: string): string {
  try {
    return fs.readFileSync(path, 'latin1').trim();
  } catch (err) {
    throw toSystemError(err, 'read', path);
  }
}

/** Reads a cgroup file, or returns null if it does not exist (the controller or feature is absent). */
export function readFileIfExists(path: string): string | null {
  try {
    return fs.readFileSync(path, 'latin1').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw toSystemError(err, 'read', path);
  }
}

/** Parses a single-number file; `max` and values at or past 2^60 (v1's "unlimited") become null. */
export function parseLimitValue(text: string): number | null {
  if (text === 'max') return null;
  const n = Number(text);
  return n >= 2 ** 60 || n < 0 ? null : n;
}

/** Parses `key value` lines (memory.stat, cpu.stat, memory.events) into a map. */
export function parseKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp > 0) out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** Reads the pids listed in a `cgroup.procs` file (empty if the cgroup is gone). */
export function readPids(procsPath: string): number[] {
  const text = readFileIfExists(procsPath);
  if (!text) return [];
  return text.split('\n').map(Number);
}

/** SIGKILLs each pid; one that already exited is not an error. */
export function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw toSystemError(err, 'kill', `pid ${pid}`);
    }
  }
}

/** mkdir that reports whether it made the directory (false if it already existed). */
export function mkdirIfMissing(path: string): boolean {
  try {
    fs.mkdirSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw toSystemError(err, 'mkdir', path);
  }
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` milliseconds (only used while waiting on the kernel for a few ms). */
export function sleepMs(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/** How long {@link rmdirRetrying} keeps retrying on EBUSY before it gives up. */
const RMDIR_BUDGET_MS = 1000;

/**
 * Removes a cgroup directory. ENOENT is success (idempotence). EBUSY means
 * processes are still in it, typically ones killed a moment ago that have not
 * finished exiting; `onBusy` gets a chance to kill stragglers before each
 * retry. Gives up with SystemError(EBUSY) after about a second.
 */
export function rmdirRetrying(path: string, onBusy: () => void): void {
  const deadline = Date.now() + RMDIR_BUDGET_MS;
  for (let delay = 1; ; delay = Math.min(delay * 2, 20)) {
    try {
      fs.rmdirSync(path);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || Date.now() >= deadline) throw toSystemError(err, 'rmdir', path);
    }
    onBusy();
    sleepMs(delay);
  }
}

/** Directory entries of `path` that are directories (child cgroups); none if it does not exist. */
export function childDirs(path: string): string[] {
  try {
    return fs.readdirSync(path, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw toSystemError(err, 'readdir', path);
  }
}

/**
 * Removes a cgroup directory and any cgroups the container made below it,
 * killing stragglers while the kernel still reports it busy. Children are
 * looked for only once rmdir said EBUSY: listing a cgroup directory costs as
 * much as removing it, and containers rarely make cgroups of their own.
 */
export function removeTree(dir: string): void {
  rmdirRetrying(dir, () => {
    for (const child of childDirs(dir)) removeTree(join(dir, child));
    killPids(readPids(join(dir, 'cgroup.procs')));
  });
}

// Container ids are 64 hex digits; anything that is one safe path component is
// accepted so tests and recovery can use their own names.
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Checks that `name` is a single, harmless path component. */
export function checkName(option: string, name: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new InvalidOptionError(option, `${JSON.stringify(name)} is not a valid cgroup name (letters, digits, "_", ".", "-"; 128 at most)`);
  }
}

/** The error for a limit whose controller or kernel feature the host does not have. */
export function unsupported(option: string, what: string): UnsupportedError {
  return new UnsupportedError(`limits.${option} cannot be applied: ${what} is not available on this host`);
}
