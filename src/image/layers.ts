/**
 * Unpacked layers, one directory per ChainID:
 *
 * ```
 * layers/<chainid hex>/diff/       the layer's files, in overlay lower-layer form
 * layers/<chainid hex>/meta.json   its {@link LayerRecord}
 * layers/<chainid hex>/blob.json   its distributable blob, once known ({@link LayerBlobInfo})
 * layers/tmp-<pid>-<random>/       an extraction, removal or archive load in progress
 * ```
 *
 * A layer directory appears by one rename of a complete temporary directory
 * (meta.json included) and disappears by one rename to a temporary name before
 * it is deleted, so a layer is either all there or not there. Which images use a
 * layer is not stored here: the image store derives it from the images'
 * ChainIDs, so no counter can drift.
 * @module
 */

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DigestMismatchError, InvalidImageError } from '../errors.js';
import { chainIdOf, digestHex, type Sha256Digest } from './digest.js';
import type { FsOps } from './fsops.js';
import { unpackLayer, type LayerSource, type UnpackOptions } from './unpack.js';
import type { Compression } from './compression.js';
// store.ts imports this module too; function bindings are hoisted, so the cycle is harmless.
import { writeFileAtomic } from './store.js';

/** What the store knows about an unpacked layer (its `meta.json`). */
export interface LayerRecord {
  /** The ChainID that names this layer together with all layers below it. */
  chainId: Sha256Digest;
  /** sha256 of the layer's uncompressed tar. */
  diffId: Sha256Digest;
  /** ChainID of the layer below, null for a base layer. */
  parent: Sha256Digest | null;
  /** Bytes of regular file content. */
  size: number;
  /** When the layer was unpacked (ISO 8601). */
  created: string;
  /** Digest of the stream the layer was unpacked from (the compressed blob, for a pull). */
  blobDigest: Sha256Digest;
  /** Compression of that stream. */
  compression: Compression;
  /** Bytes of the uncompressed tar (absent in layers unpacked by older versions). */
  tarSize?: number;
}

/**
 * The compressed blob a layer is pushed and saved as (its `blob.json`): the
 * blob it was pulled as, or one made from it once. Written after the layer
 * directory appeared; the layer's meta.json never changes.
 */
export interface LayerBlobInfo {
  /** Digest of the compressed blob in the store's blobs. */
  digest: Sha256Digest;
  /** Its size in bytes. */
  size: number;
  compression: Exclude<Compression, 'none'>;
  /** Bytes of the uncompressed tar. */
  tarSize: number;
}

/** Options of {@link LayerStore.add}. */
export interface AddLayerOptions {
  /** ChainID of the layer below; null or absent for a base layer. It must be in the store. */
  parentChainId?: string | null;
  /** The DiffID the layer must have (from the image config); a mismatch stores nothing. */
  diffId?: string;
  /**
   * The digest of `diff` as given, when its source verifies it (it fails
   * instead of ending on a mismatch, as a registry blob stream does): `diff`
   * is then not hashed again (see {@link UnpackOptions.verifiedDigest}).
   */
  verifiedDigest?: Sha256Digest;
  signal?: AbortSignal;
  /**
   * Lets the layer be unpacked before its parent is in the store. An overlay
   * layer's files do not depend on the layers below it (whiteouts and opaque
   * directories are recorded, not applied), so only publishing it, under its
   * ChainID, must wait for the parent. When this is given, the parent is not
   * required up front: the layer is unpacked into a temporary directory, then
   * this is called and awaited, and the layer is published only once it
   * resolves and the parent is there. A rejection stores nothing.
   */
  parentReady?: () => Promise<unknown>;
}

const TMP_PREFIX = 'tmp-';
const BLOB_INFO = 'blob.json';

/** @internal The layers directory of an image store. */
export class LayerStore {
  readonly dir: string;

  constructor(
    root: string,
    private readonly fsops: FsOps,
    private readonly lock: <T>(fn: () => Promise<T>) => Promise<T>,
  ) {
    this.dir = join(root, 'layers');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** `layers/<hex>` of a ChainID. */
  path(chainId: string): string {
    return join(this.dir, digestHex(chainId, 'chainId'));
  }

  /** The directory holding the layer's files (an overlay lowerdir). */
  diffDir(chainId: string): string {
    return join(this.path(chainId), 'diff');
  }

  has(chainId: string): boolean {
    return existsSync(join(this.path(chainId), 'meta.json'));
  }

  get(chainId: string): LayerRecord | undefined {
    try {
      return JSON.parse(readFileSync(join(this.path(chainId), 'meta.json'), 'utf8')) as LayerRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** The layer's `blob.json`, or undefined when it has none (or the layer is gone). */
  blobInfo(chainId: string): LayerBlobInfo | undefined {
    try {
      return JSON.parse(readFileSync(join(this.path(chainId), BLOB_INFO), 'utf8')) as LayerBlobInfo;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  /** Writes the layer's `blob.json` atomically. Call under the store lock, with the layer present. */
  setBlobInfo(chainId: string, info: LayerBlobInfo): void {
    writeFileAtomic(join(this.path(chainId), BLOB_INFO), JSON.stringify(info));
  }

  /**
   * A new private directory among the layers' temporaries: removed by
   * {@link removeLeftovers} if this process dies before the caller removes it.
   * On the store's file system, so files in it can be renamed into place.
   */
  makeTempDir(): string {
    const dir = this.tempPath();
    mkdirSync(dir, 0o700);
    return dir;
  }

  /** ChainIDs of every layer in the store. */
  list(): Sha256Digest[] {
    return readdirSync(this.dir)
      .filter((n) => /^[a-f0-9]{64}$/.test(n) && existsSync(join(this.dir, n, 'meta.json')))
      .map((n) => `sha256:${n}` as Sha256Digest);
  }

  private tempPath(): string {
    return join(this.dir, `${TMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  /**
   * Unpacks a layer (see {@link unpackLayer}) unless a layer with the expected
   * ChainID is already there, in which case `diff` is not read (a Node stream is
   * destroyed). Extraction happens outside the lock; only the final rename is
   * done under it.
   */
  async add(diff: LayerSource, opts: AddLayerOptions = {}): Promise<LayerRecord> {
    const parent = (opts.parentChainId ?? null) as Sha256Digest | null;
    const parentMissing = () => new InvalidImageError(`parent layer ${parent} is not in the store`);
    if (parent !== null && !opts.parentReady && !this.has(parent)) throw parentMissing();
    if (opts.diffId !== undefined) {
      digestHex(opts.diffId, 'diffId');
      const existing = this.get(chainIdOf(parent, opts.diffId));
      if (existing) {
        (diff as { destroy?: () => void }).destroy?.();
        return existing;
      }
    }

    const tmp = this.tempPath();
    mkdirSync(tmp, 0o700);
    try {
      const diffDir = join(tmp, 'diff');
      mkdirSync(diffDir);
      chmodSync(diffDir, 0o755);
      const result = await unpackLayer(diff, diffDir, { fsops: this.fsops, signal: opts.signal, verifiedDigest: opts.verifiedDigest });
      if (opts.diffId !== undefined && result.diffId !== opts.diffId) throw new DigestMismatchError(opts.diffId, result.diffId);
      const record: LayerRecord = {
        chainId: chainIdOf(parent, result.diffId),
        diffId: result.diffId,
        parent,
        size: result.size,
        created: new Date().toISOString(),
        blobDigest: result.digest,
        compression: result.compression,
        tarSize: result.tarSize,
      };
      writeFileSync(join(tmp, 'meta.json'), JSON.stringify(record));
      if (opts.parentReady) {
        await opts.parentReady();
        if (parent !== null && !this.has(parent)) throw parentMissing();
      }
      return await this.lock(async () => {
        const existing = this.get(record.chainId);
        if (existing) return existing; // another process unpacked the same layer meanwhile
        const final = this.path(record.chainId);
        if (existsSync(final)) this.removeDir(final); // debris without meta.json
        renameSync(tmp, final);
        return record;
      });
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }

  /** Deletes a layer: renamed away first, so it is never seen half-deleted. Call under the store lock. */
  remove(chainId: string): void {
    const path = this.path(chainId);
    if (existsSync(path)) this.removeDir(path);
  }

  private removeDir(path: string): void {
    const doomed = this.tempPath();
    renameSync(path, doomed);
    rmSync(doomed, { recursive: true, force: true });
  }

  /** Removes temporary directories left by processes that no longer exist. */
  removeLeftovers(): string[] {
    const removed: string[] = [];
    for (const name of readdirSync(this.dir)) {
      const m = /^tmp-(\d+)-[a-f0-9]+$/.exec(name);
      if (!m || processAlive(Number(m[1]))) continue;
      rmSync(join(this.dir, name), { recursive: true, force: true });
      removed.push(name);
    }
    return removed;
  }
}

/** True when a process with this pid exists (EPERM means it exists but is not ours). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
