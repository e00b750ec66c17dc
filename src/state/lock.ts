import { closeSync, openSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { native } from '../isolation/native.js';

/**
 * An exclusive lock on a file, shared safely by processes (flock) and by the
 * async callers of one process (a promise queue: flock alone would let two
 * callers on the same open file both "hold" it).
 * @internal
 */
export class FileLock {
  private readonly fd: number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(path: string) {
    this.fd = openSync(path, 'a+');
  }

  /** Runs `fn` while holding the lock. */
  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const next = this.queue.then(async () => {
      await this.acquire();
      try {
        return await fn();
      } finally {
        native.flock(this.fd, 'unlock', false);
      }
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Runs `fn` under the lock only if no other process holds it; returns undefined otherwise. */
  tryRunSync<T>(fn: () => T): T | undefined {
    if (!native.flock(this.fd, 'exclusive', true)) return undefined;
    try {
      return fn();
    } finally {
      native.flock(this.fd, 'unlock', false);
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  // Non-blocking attempts with backoff instead of a blocking flock, which would
  // stall the event loop (or tie up a libuv pool thread) while another process holds it.
  private async acquire(): Promise<void> {
    for (let delay = 1; !native.flock(this.fd, 'exclusive', true); delay = Math.min(delay * 2, 50)) {
      await sleep(delay);
    }
  }
}
