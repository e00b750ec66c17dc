/**
 * Content digests: the sha256 names of blobs, layer diffs and images, and the
 * OCI ChainID that names a layer together with everything below it.
 * @module
 */

import { createHash, type Hash } from 'node:crypto';
import { InvalidOptionError } from '../errors.js';

/** A digest the store can verify: `sha256:` followed by 64 lowercase hex characters. */
export type Sha256Digest = `sha256:${string}`;

const SHA256_DIGEST = /^sha256:[a-f0-9]{64}$/;

/** True when `s` is `sha256:<64 lowercase hex>`. */
export function isSha256Digest(s: string): s is Sha256Digest {
  return SHA256_DIGEST.test(s);
}

/**
 * The hex part of a sha256 digest, checked, for use as a file name.
 * @throws {@link InvalidOptionError} when `digest` is not `sha256:<64 hex>` (other
 *   algorithms are refused: everything the store names is sha256).
 */
export function digestHex(digest: string, option = 'digest'): string {
  if (!isSha256Digest(digest)) {
    throw new InvalidOptionError(option, `${JSON.stringify(digest)} is not a sha256 digest (sha256:<64 lowercase hex>)`);
  }
  return digest.slice(7);
}

/** The sha256 digest of `data`. */
export function sha256Digest(data: Uint8Array | string): Sha256Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/**
 * OCI ChainID of a layer stack, bottom layer first:
 * `ChainID(L0) = DiffID(L0)`, `ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))`.
 * @returns one ChainID per layer, in the same order as `diffIds`.
 */
export function chainIds(diffIds: readonly string[]): Sha256Digest[] {
  const out: Sha256Digest[] = [];
  for (const diffId of diffIds) {
    const parent = out[out.length - 1];
    out.push(parent === undefined ? (diffId as Sha256Digest) : sha256Digest(`${parent} ${diffId}`));
  }
  return out;
}

/** The ChainID of a layer whose diff is `diffId` on top of `parent` (null for a base layer). */
export function chainIdOf(parent: string | null | undefined, diffId: string): Sha256Digest {
  return parent ? sha256Digest(`${parent} ${diffId}`) : (diffId as Sha256Digest);
}

/** Hashes and counts bytes as they pass, for digests computed while streaming. */
export class Digester {
  private readonly hash: Hash = createHash('sha256');
  /** Bytes seen so far. */
  size = 0;

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.size += chunk.byteLength;
  }

  /** The digest of everything seen; call once, at the end. */
  digest(): Sha256Digest {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/** Passes `source` through unchanged, feeding every chunk to `digester` on the way. */
export async function* digesting(source: AsyncIterable<Uint8Array>, digester: Pick<Digester, 'update'>): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    digester.update(chunk);
    yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
}
