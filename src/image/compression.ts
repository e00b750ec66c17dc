/**
 * Layer compression: sniffed from the magic bytes (never trusted from a media
 * type or file name), undone while streaming.
 *
 * zstd: Node 20's zlib has no zstd (createZstdDecompress arrived in Node 22.15 /
 * 23.8). When it is missing the stream is piped through the `zstd -dc` binary
 * (Debian package `zstd`).
 * @module
 */

import { spawn } from 'node:child_process';
import { Readable, pipeline, type Duplex } from 'node:stream';
import * as zlib from 'node:zlib';
import { DocklessError, UnsupportedError } from '../errors.js';
import { coalesce } from './chunks.js';

/** How a layer blob is compressed. */
export type Compression = 'none' | 'gzip' | 'zstd';

/** The compression whose magic number starts `head` (at least 4 bytes, or the whole input if shorter). */
export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

/** The first `n` bytes of a stream, and the stream again from its start. */
export async function peek(
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  n: number,
): Promise<{ head: Buffer; stream: AsyncIterable<Buffer> }> {
  const it: AsyncIterator<Uint8Array> | Iterator<Uint8Array> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  const seen: Buffer[] = [];
  let size = 0;
  let done = false;
  while (size < n) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    const b = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    seen.push(b);
    size += b.length;
  }
  const head = Buffer.concat(seen).subarray(0, n);
  async function* replay(): AsyncGenerator<Buffer> {
    try {
      yield* seen;
      if (done) return;
      for (;;) {
        const r = await it.next();
        if (r.done) return;
        yield Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      }
    } finally {
      await it.return?.();
    }
  }
  return { head, stream: replay() };
}

/** Feeds `source` through a transform stream; the transform's errors surface in the iteration. */
function through(source: AsyncIterable<Buffer>, transform: Duplex): AsyncIterable<Buffer> {
  pipeline(Readable.from(source, { objectMode: false }), transform, () => {
    // Errors reach the consumer through `transform`, which pipeline destroys with them.
  });
  return transform;
}

/**
 * Inflate runs on libuv's threadpool, one round trip per output chunk: with
 * zlib's default 16 KiB chunks the round trips, not inflating, are the cost
 * (about twice the time for a large layer). With 1 MiB chunks a round trip
 * also outlasts the consumer's turn (see unpackLayer), so the next one is
 * always started in time. Up to 8 chunks wait for the consumer, 4 MiB of
 * input for inflating. The output side is in object mode so that each chunk
 * is handed on as it is: a byte-mode stream read by an async iterator
 * concatenates all it has buffered into a new buffer at every read. (zlib
 * passes stream options on to its Transform.)
 */
const GUNZIP_OPTIONS: zlib.ZlibOptions = {
  chunkSize: 1 << 20,
  ...{ readableObjectMode: true, readableHighWaterMark: 8, writableHighWaterMark: 4 << 20 },
};

/**
 * What gunzip is fed at a time: zlib inflates each write on its own and
 * hands out what each write made, so 64 KiB network reads would mean many
 * more round trips and small output chunks.
 */
const INPUT_CHUNK = 1 << 20;

type ZlibWithZstd = typeof zlib & { createZstdDecompress?: () => Duplex };

/** `source` decompressed as `compression` says. */
export function decompress(source: AsyncIterable<Buffer>, compression: Compression): AsyncIterable<Buffer> {
  switch (compression) {
    case 'none':
      return source;
    case 'gzip':
      return through(coalesce(source, INPUT_CHUNK), zlib.createGunzip(GUNZIP_OPTIONS));
    case 'zstd': {
      const native = (zlib as ZlibWithZstd).createZstdDecompress;
      return native ? through(source, native()) : zstdBinary(source);
    }
  }
}

/** Decompresses through `zstd -dc`, with the child killed if the consumer stops early. */
async function* zstdBinary(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const child = spawn('zstd', ['-dcq'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let spawnError: Error | undefined;
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => {
    child.on('error', (err) => {
      spawnError = err;
      resolve(null);
    });
    child.on('close', (code) => resolve(code));
  });
  let inputError: Error | undefined;
  pipeline(Readable.from(source, { objectMode: false }), child.stdin, (err) => {
    // EPIPE just means zstd stopped reading (it failed, and says why on stderr).
    if (err && (err as NodeJS.ErrnoException).code !== 'EPIPE') inputError = err;
  });
  try {
    let readError: unknown;
    try {
      for await (const chunk of child.stdout) yield chunk as Buffer;
    } catch (err) {
      readError = err; // a failed spawn shows up here as a premature close: report the cause below
    }
    const code = await exited;
    if (spawnError) {
      if ((spawnError as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new UnsupportedError('zstd-compressed layers need Node >= 22.15 or the zstd binary (Debian package zstd)');
      }
      throw spawnError;
    }
    if (inputError) throw inputError;
    if (readError) throw readError;
    if (code !== 0) throw new DocklessError(`zstd decompression failed: ${stderr.trim() || `exit code ${code}`}`, 'ERR_DECOMPRESS');
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child.stdin.destroy();
    child.stdout.destroy();
  }
}
