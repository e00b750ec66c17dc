/**
 * Re-chunking of byte streams.
 * @internal
 * @module
 */

/**
 * `source` in chunks of at least `size` bytes (but the last). Consumers that
 * pay per chunk (a threadpool round trip for each gunzip write or
 * asynchronous file write, a promise per step) would otherwise pay it for
 * every 64 KiB a network read brings; copying the bytes once costs less.
 */
export async function* coalesce(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, size: number): AsyncGenerator<Buffer> {
  let parts: Uint8Array[] = [];
  let held = 0;
  for await (const chunk of source) {
    if (held === 0 && chunk.byteLength >= size) {
      yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      continue;
    }
    parts.push(chunk);
    held += chunk.byteLength;
    if (held >= size) {
      const out = Buffer.concat(parts, held);
      parts = [];
      held = 0;
      yield out;
    }
  }
  if (held > 0) yield Buffer.concat(parts, held);
}
