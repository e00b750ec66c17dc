/**
 * A layer's distributable blob: the compressed tar a registry or an archive
 * carries, found or made once per layer.
 *
 * A pulled layer keeps the blob it came as (its `LayerRecord.blobDigest`), and
 * that blob is the answer. A layer made by `import` (or loaded from plain tars
 * before blobs were kept) has none: its files are packed again into a tar with
 * {@link packDirectory} (deterministic; overlay whiteouts back to OCI ones),
 * which must hash to the layer's DiffID, else the image would change on the way
 * out. That tar is gzipped into a blob (zlib runs on libuv's threadpool, so
 * packing on the main thread and compressing overlap on two cores). Which blob
 * a layer ships as is remembered in the layer's `blob.json`
 * ({@link LayerBlobInfo}), so it is made only once, and the blob lives and dies
 * with the layer (the store counts it among the blobs an image needs).
 * @module
 */

import { createReadStream, statSync } from 'node:fs';
import { pipeline, Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { AbortedError, DigestMismatchError, InvalidImageError, LayerNotReproducibleError } from '../errors.js';
import { decompress, type Compression } from './compression.js';
import { Digester, type Sha256Digest } from './digest.js';
import type { FsOps } from './fsops.js';
import { packDirectory } from './import.js';
import type { LayerBlobInfo, LayerRecord, LayerStore } from './layers.js';
import { MediaType } from './oci.js';

/** What the functions here need from the image store. @internal */
export interface LayerBlobContext {
  layers: LayerStore;
  fsops: FsOps;
  lock: <T>(fn: () => Promise<T>) => Promise<T>;
  hasBlob(digest: string): boolean;
  blobPath(digest: string): string;
  writeBlob(data: AsyncIterable<Uint8Array>, expectedDigest?: string, opts?: { signal?: AbortSignal }): Promise<{ digest: Sha256Digest; size: number }>;
  discard(items: { blobs?: readonly string[] }): Promise<unknown>;
}

/** The manifest dialect a layer is described in. */
export type ManifestFormat = 'docker' | 'oci';

/**
 * The media type of a layer blob in a manifest. Docker's schema 2 has no zstd
 * type; a caller putting zstd layers in a manifest must choose OCI.
 */
export function layerMediaType(compression: Compression, format: ManifestFormat): string {
  if (compression === 'zstd') return MediaType.OciLayerZstd;
  if (compression === 'none') return MediaType.OciLayer;
  return format === 'docker' ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip;
}

function layerOf(ctx: LayerBlobContext, chainId: string): LayerRecord {
  const layer = ctx.layers.get(chainId);
  if (!layer) throw new InvalidImageError(`layer ${chainId} is not in the store`);
  return layer;
}

/**
 * The layer's distributable blob, made and recorded first if it has none yet.
 * @throws {@link LayerNotReproducibleError} when the layer has no blob and its
 *   files do not pack back to its DiffID (nothing is stored then);
 *   {@link InvalidImageError} when the layer is not in the store.
 */
export async function ensureLayerBlob(ctx: LayerBlobContext, chainId: string, opts: { signal?: AbortSignal } = {}): Promise<LayerBlobInfo> {
  const layer = layerOf(ctx, chainId);
  const known = ctx.layers.blobInfo(chainId);
  if (known && ctx.hasBlob(known.digest)) return known;

  if (layer.compression !== 'none' && ctx.hasBlob(layer.blobDigest)) {
    // The blob it was pulled (or loaded) as. Its tar size is counted once, verifying it on the way.
    const path = ctx.blobPath(layer.blobDigest);
    const tarSize = layer.tarSize ?? (await countTar(decompress(fileChunks(path), layer.compression), layer.diffId, opts.signal));
    const info: LayerBlobInfo = { digest: layer.blobDigest, size: statSync(path).size, compression: layer.compression, tarSize };
    await record(ctx, chainId, info);
    return info;
  }

  // A plain tar kept as a blob is the layer byte for byte; otherwise its files are packed again.
  const plain = layer.compression === 'none' && ctx.hasBlob(layer.blobDigest);
  const tar = plain ? fileChunks(ctx.blobPath(layer.blobDigest)) : packDirectory(ctx.layers.diffDir(chainId), ctx.fsops, opts.signal, { layer: true });
  const digester = new Digester();
  const checked = async function* (): AsyncGenerator<Buffer> {
    for await (const chunk of tar) {
      digester.update(chunk);
      yield chunk;
    }
    // Thrown before the gzip stream ends, so writeBlob never renames the blob into place.
    const actual = digester.digest();
    if (actual !== layer.diffId) {
      if (plain) throw new DigestMismatchError(layer.diffId, actual);
      throw new LayerNotReproducibleError(chainId, layer.diffId, actual);
    }
  };
  const blob = await ctx.writeBlob(gzip(checked()), undefined, opts);
  const info: LayerBlobInfo = { digest: blob.digest, size: blob.size, compression: 'gzip', tarSize: digester.size };
  await record(ctx, chainId, info);
  return info;
}

/**
 * Stores a layer's distributable blob as its `blob.json`. When the layer was
 * removed meanwhile, the blob is dropped again (unless an image needs it).
 */
export async function record(ctx: LayerBlobContext, chainId: string, info: LayerBlobInfo): Promise<void> {
  const kept = await ctx.lock(async () => {
    if (!ctx.layers.has(chainId)) return false;
    ctx.layers.setBlobInfo(chainId, info);
    return true;
  });
  if (!kept) await ctx.discard({ blobs: [info.digest] });
}

/**
 * The layer's uncompressed tar as `docker save` writes it: `size` bytes whose
 * sha256 is the DiffID. The stream fails with {@link DigestMismatchError}
 * instead of ending if the content does not match.
 */
export async function openLayerTar(
  ctx: LayerBlobContext,
  chainId: string,
  opts: { signal?: AbortSignal } = {},
): Promise<{ size: number; diffId: Sha256Digest; stream: AsyncIterable<Buffer> }> {
  const layer = layerOf(ctx, chainId);
  if (layer.compression === 'none' && ctx.hasBlob(layer.blobDigest)) {
    const path = ctx.blobPath(layer.blobDigest);
    return { size: statSync(path).size, diffId: layer.diffId, stream: lazy(() => verified(fileChunks(path), layer.diffId)) };
  }
  const blob = await ensureLayerBlob(ctx, chainId, opts);
  const path = ctx.blobPath(blob.digest);
  return { size: blob.tarSize, diffId: layer.diffId, stream: lazy(() => verified(decompress(fileChunks(path), blob.compression), layer.diffId)) };
}

/** Opens the file only when iterated: a stream never read holds no descriptor. */
async function* lazy(open: () => AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  yield* open();
}

/** The file's bytes in large chunks (fewer, bigger hash and compression calls). */
function fileChunks(path: string): AsyncIterable<Buffer> {
  return createReadStream(path, { highWaterMark: 1 << 20 });
}

/** `source` gzipped on the threadpool; an error of `source` ends the output with that error. */
export function gzip(source: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  const out = zlib.createGzip({ chunkSize: 1 << 16 });
  pipeline(Readable.from(source, { objectMode: false }), out, () => {
    // Errors reach the consumer through `out`, which pipeline destroys with them.
  });
  return out;
}

async function* verified(source: AsyncIterable<Buffer>, diffId: string): AsyncGenerator<Buffer> {
  const digester = new Digester();
  for await (const chunk of source) {
    digester.update(chunk);
    yield chunk;
  }
  const actual = digester.digest();
  if (actual !== diffId) throw new DigestMismatchError(diffId, actual);
}

async function countTar(source: AsyncIterable<Buffer>, diffId: string, signal?: AbortSignal): Promise<number> {
  let size = 0;
  for await (const chunk of verified(source, diffId)) {
    if (signal?.aborted) throw new AbortedError();
    size += chunk.length;
  }
  return size;
}
