import { closeSync, mkdirSync, openSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { native } from '../isolation/native.js';

/**
 * Marks an engine as alive for as long as its process lives: the engine holds an
 * exclusive flock on `owners/<id>.lock`. The kernel drops the lock when the
 * process dies, however it dies (SIGKILL included), so another engine can tell
 * a dead owner from a live one without trusting pids, which get reused.
 * @internal
 */
export class OwnerToken {
  readonly id: string;
  private fd: number | undefined;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.id = randomBytes(8).toString('hex');
    // Lock first, publish after: a lock file seen unlocked must mean a dead owner.
    const tmp = join(dir, `${this.id}.tmp`);
    this.fd = openSync(tmp, 'w');
    native.flock(this.fd, 'exclusive', false);
    renameSync(tmp, join(dir, `${this.id}.lock`));
  }

  /** Drops the token; containers it owned are now ownerless. */
  release(): void {
    if (this.fd === undefined) return;
    rmSync(join(this.dir, `${this.id}.lock`), { force: true });
    closeSync(this.fd);
    this.fd = undefined;
  }
}

/** True if the engine `ownerId` under `dir` is still alive (holds its lock). @internal */
export function ownerAlive(dir: string, ownerId: string): boolean {
  let fd: number;
  try {
    fd = openSync(join(dir, `${ownerId}.lock`), 'r');
  } catch {
    return false; // released cleanly, or never existed
  }
  try {
    if (!native.flock(fd, 'shared', true)) return true;
    native.flock(fd, 'unlock', false);
    return false;
  } finally {
    closeSync(fd);
  }
}

/** Removes lock files of owners that are gone. @internal */
export function pruneOwners(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.endsWith('.lock')) continue;
    const id = name.replace(/\.lock$/, '');
    if (!ownerAlive(dir, id)) rmSync(join(dir, name), { force: true });
  }
}
