/**
 * `docker load`: images from a docker-archive or an OCI layout tar (plain,
 * gzip or zstd), the format told by what the archive holds.
 *
 * Loading is all or nothing. The archive is read into a scratch directory and
 * every image checked (configs, names, blob digests) before the store is
 * touched; layers are then unpacked with their DiffIDs verified, and if
 * anything fails, what this load stored is removed again.
 *
 * A layer's bytes are kept as its distributable blob, so that pushing or
 * saving it again gives back exactly what was loaded: a compressed layer file
 * is moved into the blobs as it is; a plain tar is gzipped into one while it is
 * unpacked (on the threadpool, beside the extraction). Packing the files again
 * could not promise that: another tool's tar need not be in dockless's
 * canonical form.
 * @module
 */

import { closeSync, createReadStream, existsSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { z } from 'zod';
import { AbortedError, InvalidArchiveError, InvalidOptionError } from '../../errors.js';
import { parseOptions } from '../../validate.js';
import { detectCompression } from '../compression.js';
import { chainIdOf } from '../digest.js';
import { gzip } from '../layer-blobs.js';
import type { ImageRecord, ImageStore } from '../store.js';
import { readDockerArchive } from './docker-archive.js';
import type { LoadItem } from './items.js';
import { readOciLayout } from './oci-layout.js';
import { ArchiveFiles, type SpooledFile } from './spool.js';

/** Options of `engine.images.load`. */
export interface ImageLoadOptions {
  /** Aborting stops the load and removes what it stored; it then rejects with {@link AbortedError}. */
  signal?: AbortSignal;
}

const LoadOptionsSchema = z.strictObject({
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'must be an AbortSignal').optional(),
});

/** @internal Implements `engine.images.load`. */
export async function loadImages(store: ImageStore, source: string | NodeJS.ReadableStream, options: ImageLoadOptions = {}): Promise<ImageRecord[]> {
  const { signal } = parseOptions(LoadOptionsSchema, options) as ImageLoadOptions;
  let input: AsyncIterable<Uint8Array>;
  if (typeof source === 'string') {
    const path = resolve(source);
    let isFile = false;
    try {
      isFile = statSync(path).isFile();
    } catch (err) {
      throw new InvalidOptionError('source', `${path}: ${(err as NodeJS.ErrnoException).code ?? 'cannot stat'}`);
    }
    if (!isFile) throw new InvalidOptionError('source', `${path} is not a file`);
    input = createReadStream(path, { highWaterMark: 1 << 20 });
  } else if (source && typeof (source as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
    input = source as AsyncIterable<Uint8Array>;
  } else {
    throw new InvalidOptionError('source', 'must be a path or a readable stream');
  }
  if (signal?.aborted) throw new AbortedError();

  const scratch = store.makeTempDir();
  try {
    const files = await ArchiveFiles.read(input, scratch, signal);
    let items: LoadItem[];
    if (files.has('manifest.json')) items = readDockerArchive(files);
    else if (files.has('index.json')) items = readOciLayout(files);
    else throw new InvalidArchiveError('it has neither manifest.json (docker save) nor index.json (OCI layout)');
    return await storeItems(store, items, signal);
  } finally {
    (input as { destroy?: () => void }).destroy?.();
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function storeItems(store: ImageStore, items: readonly LoadItem[], signal?: AbortSignal): Promise<ImageRecord[]> {
  const created = { layers: [] as string[], blobs: [] as string[] };
  const keep: SpooledFile[] = [];
  const newImages: string[] = [];
  try {
    for (const item of items) {
      let parent: string | null = null;
      for (const [i, file] of item.layers.entries()) {
        const diffId = item.diffIds[i]!;
        const chainId = chainIdOf(parent, diffId);
        if (!store.hasLayer(chainId)) {
          await addLayer(store, file, parent, diffId, chainId, created, keep, signal);
          created.layers.push(chainId);
        }
        parent = chainId;
      }
    }
    // Two layers may share one file: the first move takes it.
    for (const file of keep) if (existsSync(file.path) && store.adoptBlob(file.path, file.digest)) created.blobs.push(file.digest);
    for (const item of items) {
      if (signal?.aborted) throw new AbortedError();
      const existed = store.find(item.id) !== undefined;
      await store.addImage(item.config, item.refs);
      if (!existed) newImages.push(item.id);
    }
    return items.map((item) => store.resolve(item.id));
  } catch (err) {
    for (const id of newImages) await store.remove(id, { force: true }).catch(() => undefined);
    await store.discard(created).catch(() => undefined);
    if (signal?.aborted) throw new AbortedError();
    throw err;
  }
}

async function addLayer(
  store: ImageStore,
  file: SpooledFile,
  parent: string | null,
  diffId: string,
  chainId: string,
  created: { blobs: string[] },
  keep: SpooledFile[],
  signal?: AbortSignal,
): Promise<void> {
  const open = () => createReadStream(file.path, { highWaterMark: 1 << 20 });
  if (detectCompression(head(file.path)) !== 'none') {
    // Unpacked from the file, whose digest is then the layer's blobDigest; the file becomes that blob.
    await store.addLayer(open(), { parentChainId: parent, diffId, ...(signal ? { signal } : {}) });
    keep.push(file);
    return;
  }
  const stop = new AbortController();
  const both = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  const [layer, blob] = await Promise.allSettled([
    store.addLayer(open(), { parentChainId: parent, diffId, ...(signal ? { signal } : {}) }).catch((err: unknown) => {
      stop.abort(); // no use finishing the blob of a refused layer
      throw err;
    }),
    store.writeBlob(gzip(open()), undefined, { signal: both }),
  ]);
  if (blob.status === 'fulfilled') created.blobs.push(blob.value.digest);
  if (layer.status === 'rejected') throw layer.reason;
  if (blob.status === 'rejected') throw blob.reason;
  await store.setLayerBlob(chainId, { digest: blob.value.digest, size: blob.value.size, compression: 'gzip', tarSize: file.size });
}

function head(path: string): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(4);
    return buf.subarray(0, readSync(fd, buf, 0, 4, 0));
  } finally {
    closeSync(fd);
  }
}
