/**
 * One byte stream read by two consumers at the pace of the slower one, e.g. a
 * layer download that is unpacked and stored as a blob at the same time.
 * @internal
 * @module
 */

import { PassThrough, type Readable } from 'node:stream';

/**
 * Splits `source` into two streams that each get every chunk. Nothing is
 * buffered beyond the branches' high-water marks: the source is read only while
 * every live branch wants more. A branch its consumer destroys is dropped and
 * the other goes on; when both are gone the source is destroyed. An error of
 * the source ends both branches with that error.
 */
export function tee(source: Readable): [PassThrough, PassThrough] {
  const branches = [new PassThrough(), new PassThrough()] as const;
  // A branch can be failed before its consumer starts reading (or after it
  // stopped); its consumer sees the error through its own reads, not as an
  // unhandled 'error' event.
  for (const b of branches) b.on('error', () => undefined);
  void pump(source, branches);
  return [branches[0], branches[1]];
}

async function pump(source: Readable, branches: readonly PassThrough[]): Promise<void> {
  try {
    for await (const chunk of source) {
      const waits: Promise<void>[] = [];
      for (const b of branches) if (!b.destroyed && !b.write(chunk)) waits.push(drained(b));
      if (branches.every((b) => b.destroyed)) return; // leaving the loop destroys the source
      await Promise.all(waits);
    }
    for (const b of branches) if (!b.destroyed) b.end();
  } catch (err) {
    for (const b of branches) b.destroy(err as Error);
  }
}

/** Settles when `b` wants more data or is gone. */
function drained(b: PassThrough): Promise<void> {
  return new Promise((resolve) => {
    if (b.destroyed || !b.writableNeedDrain) return resolve();
    const done = () => {
      b.off('drain', done);
      b.off('close', done);
      resolve();
    };
    b.on('drain', done);
    b.on('close', done);
  });
}
