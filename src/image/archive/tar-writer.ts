/**
 * Writing an image archive: a tar of regular files (tar-stream's packer),
 * streamed to a path or a writable stream with backpressure all the way from
 * the layer files.
 *
 * Entries get mode 0644, owner 0 and mtime 0, so saving the same images twice
 * gives the same bytes.
 * @module
 */

import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, basename, join, resolve } from 'node:path';
import { finished, Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack } from 'tar-stream';
import { AbortedError } from '../../errors.js';

/** One file of the archive. */
export interface ArchiveEntry {
  name: string;
  /** Its size; the data must be exactly this long. */
  size: number;
  /** The bytes, or a function opening them only when the entry is written. */
  data: Uint8Array | (() => AsyncIterable<Uint8Array> | Promise<AsyncIterable<Uint8Array>>);
}

/**
 * Writes `entries` as a tar archive. A path is written to a temporary file
 * beside it and renamed into place once complete, so a failed save leaves no
 * partial archive; a stream is ended on success and destroyed on failure.
 */
export async function writeArchive(
  entries: AsyncIterable<ArchiveEntry>,
  destination: string | NodeJS.WritableStream,
  signal?: AbortSignal,
): Promise<void> {
  const pack = tarPack();
  const produce = (async () => {
    try {
      for await (const entry of entries) {
        if (signal?.aborted) throw new AbortedError();
        await addEntry(pack, entry);
      }
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
      throw err;
    }
  })();
  // tar-stream's streams are streamx, not Node streams: bridge through async iteration.
  const output = Readable.from((async function* () {
    yield* pack as AsyncIterable<Buffer>;
  })());

  const tmp = typeof destination === 'string' ? join(dirname(resolve(destination)), `.${basename(destination)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`) : undefined;
  const sink = tmp !== undefined ? createWriteStream(tmp, { flags: 'wx', mode: 0o644 }) : (destination as Writable);
  try {
    // A failing destination must stop the producer, and pipeline alone would not: it waits
    // for the bridge to close, which waits for the packer's next chunk, which waits for the
    // producer. Destroying the packer fails the entry being written and unblocks them all.
    const unwatch = finished(sink, (err) => {
      if (err) pack.destroy(err);
    });
    const [piped, produced] = await Promise.allSettled([pipeline(output, sink, signal ? { signal } : {}), produce]);
    unwatch();
    // The producer's error says what went wrong; the pipeline's is usually its echo.
    if (produced.status === 'rejected') throw produced.reason;
    if (piped.status === 'rejected') throw piped.reason;
    if (tmp !== undefined) renameSync(tmp, destination as string);
  } catch (err) {
    if (tmp !== undefined) rmSync(tmp, { force: true });
    if (signal?.aborted) throw new AbortedError();
    throw err;
  }
}

type Pack = ReturnType<typeof tarPack>;
/** What an entry of tar-stream's packer is at run time: a streamx writable. */
interface EntrySink extends NodeJS.EventEmitter {
  write(chunk: Uint8Array): boolean;
  end(): void;
  destroy(err?: Error): void;
}

async function addEntry(pack: Pack, entry: ArchiveEntry): Promise<void> {
  let settle!: (err?: Error | null) => void;
  const done = new Promise<void>((resolveDone, rejectDone) => {
    settle = (err) => (err ? rejectDone(err) : resolveDone());
  });
  // tar-stream checks that exactly `size` bytes arrive and fails the entry otherwise.
  const header = { name: entry.name, size: entry.size, mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), type: 'file' as const };
  const sink = pack.entry(header, (err) => settle(err)) as unknown as EntrySink;
  // Its errors also reach the callback above; unlistened, streamx would throw them.
  sink.on('error', () => undefined);
  try {
    const data = typeof entry.data === 'function' ? await entry.data() : [entry.data];
    for await (const chunk of data) {
      // A destroyed entry never drains, but its callback fails: wait for whichever comes first.
      if (!sink.write(chunk)) await Promise.race([new Promise((resolveDrain) => sink.once('drain', resolveDrain)), done]);
    }
    sink.end();
  } catch (err) {
    done.catch(() => undefined);
    sink.destroy(err as Error);
    throw err;
  }
  await done;
}
