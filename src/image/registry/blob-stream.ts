/**
 * A blob download as a Node stream that verifies what it hands on: every byte
 * is hashed, the stream fails with {@link DigestMismatchError} instead of ending
 * when the digest does not match, and a connection that breaks mid-way is
 * resumed with `Range: bytes=N-` a bounded number of times.
 * @internal
 * @module
 */

import type { Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import createDebug from 'debug';
import { AbortedError, DigestMismatchError, DocklessError, RegistryError } from '../../errors.js';
import type { Descriptor } from './manifest.js';

const debug = createDebug('dockless:registry:blob');

/** Options of {@link BlobStream}. */
export interface BlobStreamOptions {
  registry: string;
  descriptor: Descriptor;
  /** The response to read first: 200 for the whole blob, 206 from `offset`. */
  first: Response;
  /** The byte offset the stream starts at (bytes before it were hashed into `hash` by the caller). */
  offset: number;
  /** The running hash, holding the first `offset` bytes. */
  hash: Hash;
  /** Ask the registry again for the blob from `offset` (Range), for resuming. */
  reopen: (offset: number) => Promise<Response>;
  /** How many times a broken download is resumed before giving up. */
  maxRetries: number;
  onProgress?: (done: number, total: number) => void;
  /** Aborting destroys the stream with {@link AbortedError}. */
  signal?: AbortSignal;
  /** Called once when the stream is destroyed or ends, to release the connection. */
  cleanup: () => void;
}

/** @internal */
export class BlobStream extends Readable {
  private reader: ReadableStreamDefaultReader<Uint8Array>;
  private position: number;
  /** Bytes still to drop from the current response (when a server ignored Range and sent all). */
  private skip = 0;
  private retries = 0;
  private pumping = false;
  private readonly onAbort = () => this.destroy(new AbortedError('blob download aborted'));

  constructor(private readonly o: BlobStreamOptions) {
    super({ highWaterMark: 1 << 20 });
    this.position = o.offset;
    this.reader = this.readerOf(o.first, o.offset);
    if (o.signal?.aborted) queueMicrotask(this.onAbort);
    else o.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Bytes of the blob received and verified so far, including the starting offset. */
  get bytesDone(): number {
    return this.position;
  }

  override _read(): void {
    if (this.pumping) return;
    this.pumping = true;
    this.pump().catch((e: unknown) => {
      this.pumping = false;
      this.destroy(e as Error);
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.o.signal?.removeEventListener('abort', this.onAbort);
    this.reader.cancel().catch(() => undefined);
    this.o.cleanup();
    callback(error);
  }

  private async pump(): Promise<void> {
    const { descriptor } = this.o;
    for (;;) {
      let result: Awaited<ReturnType<ReadableStreamDefaultReader<Uint8Array>['read']>>;
      try {
        result = await this.reader.read();
      } catch (e) {
        if (this.destroyed) return;
        await this.reopenAt(e);
        continue;
      }
      if (this.destroyed) return;
      if (result.done) {
        if (this.position < descriptor.size) {
          await this.reopenAt(new Error(`connection ended after ${this.position} of ${descriptor.size} bytes`));
          continue;
        }
        const actual = `${descriptor.digest.slice(0, descriptor.digest.indexOf(':'))}:${this.o.hash.digest('hex')}`;
        if (actual !== descriptor.digest) throw new DigestMismatchError(descriptor.digest, actual);
        this.o.signal?.removeEventListener('abort', this.onAbort);
        this.o.cleanup();
        this.pumping = false;
        this.push(null);
        return;
      }
      let chunk = result.value;
      if (this.skip > 0) {
        const drop = Math.min(this.skip, chunk.length);
        this.skip -= drop;
        chunk = chunk.subarray(drop);
        if (chunk.length === 0) continue;
      }
      if (this.position + chunk.length > descriptor.size) {
        throw new RegistryError(this.o.registry, `blob ${descriptor.digest} is longer than the ${descriptor.size} bytes its descriptor gives`);
      }
      this.o.hash.update(chunk);
      this.position += chunk.length;
      this.o.onProgress?.(this.position, descriptor.size);
      // Clear the flag before pushing: a _read() that push() triggers starts
      // its own pump, and this one must then stop.
      this.pumping = false;
      const more = this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      if (!more || this.pumping) return;
      this.pumping = true;
    }
  }

  /** Reopen the download at the current position, or throw when retries are used up. */
  private async reopenAt(cause: unknown): Promise<void> {
    const { descriptor, registry } = this.o;
    this.reader.cancel().catch(() => undefined);
    for (;;) {
      if (this.o.signal?.aborted) throw new AbortedError('blob download aborted');
      if (this.retries >= this.o.maxRetries) {
        throw new RegistryError(
          registry,
          `download of blob ${descriptor.digest} broke off at byte ${this.position} of ${descriptor.size} ` +
            `and could not be resumed (${this.o.maxRetries} attempts): ${reason(cause)}`,
          { cause },
        );
      }
      this.retries++;
      debug('resuming %s at %d (attempt %d): %s', descriptor.digest, this.position, this.retries, reason(cause));
      await sleep(Math.min(2000, 100 * 2 ** (this.retries - 1)), undefined, { signal: this.o.signal }).catch(() => undefined);
      if (this.o.signal?.aborted) throw new AbortedError('blob download aborted');
      try {
        const response = await this.o.reopen(this.position);
        this.reader = this.readerOf(response, this.position);
        return;
      } catch (e) {
        // A registry that is briefly unreachable or overloaded gets another try;
        // a definite answer (not found, denied) does not.
        if (e instanceof AbortedError) throw e;
        if (e instanceof RegistryError && (e.status === 0 || e.status >= 500 || e.status === 429)) {
          cause = e;
          continue;
        }
        throw e;
      }
    }
  }

  /** A reader for `response`, set up to skip what it repeats before `position`. */
  private readerOf(response: Response, position: number): ReadableStreamDefaultReader<Uint8Array> {
    if (!response.body) throw new RegistryError(this.o.registry, `empty answer for blob ${this.o.descriptor.digest}`, { status: response.status });
    if (response.status === 206) {
      const start = contentRangeStart(response.headers.get('content-range'));
      if (start !== position) {
        response.body.cancel().catch(() => undefined);
        throw new RegistryError(this.o.registry, `asked for blob ${this.o.descriptor.digest} from byte ${position} but got a range starting at ${start ?? 'an unknown byte'}`, { status: 206 });
      }
      this.skip = 0;
    } else {
      // A server that ignores Range sends the whole blob again.
      this.skip = position;
    }
    return response.body.getReader();
  }
}

function contentRangeStart(header: string | null): number | undefined {
  const m = header ? /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header.trim()) : null;
  return m ? Number(m[1]) : undefined;
}

function reason(e: unknown): string {
  if (e instanceof DocklessError) return e.message;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (e as Error)?.message ?? String(e);
}
