/**
 * One byte stream read by two consumers at the pace of the slower one, e.g. a
 * layer download that is unpacked and stored as a blob at the same time.
 * @internal
 * @module
 */

import { PassThrough } from 'node:stream';

/**
 * Splits `source` into two streams that each get every chunk. Nothing is
 * buffered beyond the branches' high-water marks: the source is read only while
 * every live branch wants more. A branch its consumer destroys is dropped and
 * the other goes on; when both are gone the source is stopped (its iterator
 * returned, which destroys a stream). An error of the source ends both
 * branches with that error.
 */
export function tee(source: AsyncIterable<Uint8Array>): [PassThrough, PassThrough] {
  const branches = [branch(), branch()] as const;
  // A branch can be failed before its consumer starts reading (or after it
  // stopped); its consumer sees the error through its own reads, not as an
  // unhandled 'error' event.
  for (const b of branches) b.on('error', () => undefined);
  void pump(source, branches);
  return [branches[0], branches[1]];
}

/**
 * A branch buffers up to 16 chunks (16 MiB of a download, in the 1 MiB chunks
 * a pull hands it), so that one consumer's pauses do not stall the other at
 * once. Object mode hands each chunk on as it is: a byte-mode stream
 * read by an async iterator would concatenate all it holds into a new buffer
 * at every read.
 */
function branch(): PassThrough {
  return new PassThrough({ readableObjectMode: true, readableHighWaterMark: 16, writableHighWaterMark: 1 << 20 });
}

async function pump(source: AsyncIterable<Uint8Array>, branches: readonly PassThrough[]): Promise<void> {
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
