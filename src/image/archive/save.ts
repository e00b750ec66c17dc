/**
 * `docker save`: images into one archive, docker-archive (what `docker load`
 * reads) or an OCI image layout tar.
 * @module
 */

import { z } from 'zod';
import { AbortedError, InvalidOptionError } from '../../errors.js';
import { parseOptions } from '../../validate.js';
import { familiarName, isImageId, parseReference } from '../reference.js';
import type { ImageRecord, ImageStore } from '../store.js';
import { dockerArchiveEntries } from './docker-archive.js';
import type { ImageArchiveFormat, SaveItem } from './items.js';
import { ociLayoutEntries } from './oci-layout.js';
import { writeArchive } from './tar-writer.js';

/** Options of `engine.images.save`. */
export interface ImageSaveOptions {
  /**
   * `docker-archive` (default): `docker save`'s layout, uncompressed layer
   * tars. `oci-archive`: an OCI image layout, layers as compressed blobs.
   */
  format?: ImageArchiveFormat;
  /** Aborting stops the save with an {@link AbortedError}; a path destination is then not created. */
  signal?: AbortSignal;
}

const SaveOptionsSchema = z.strictObject({
  format: z.enum(['docker-archive', 'oci-archive']).optional(),
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'must be an AbortSignal').optional(),
});

/** @internal Implements `engine.images.save`. */
export async function saveImages(
  store: ImageStore,
  refs: readonly string[],
  destination: string | NodeJS.WritableStream,
  options: ImageSaveOptions = {},
): Promise<void> {
  const opts = parseOptions(SaveOptionsSchema, options) as ImageSaveOptions;
  if (!Array.isArray(refs) || refs.length === 0 || !refs.every((r) => typeof r === 'string' && r !== '')) {
    throw new InvalidOptionError('refs', 'must be a non-empty list of image references or ids');
  }
  const isStream = typeof destination === 'object' && destination !== null && typeof (destination as NodeJS.WritableStream).write === 'function';
  if (!isStream && (typeof destination !== 'string' || destination === '')) {
    throw new InvalidOptionError('destination', 'must be a file path or a writable stream');
  }

  // One entry per image, with every tag it was asked for by.
  const items = new Map<string, SaveItem>();
  for (const ref of refs) {
    const image = store.resolve(ref);
    const item = items.get(image.id) ?? { image, tags: [] };
    items.set(image.id, item);
    const tag = tagOf(ref, image);
    if (tag !== undefined && !item.tags.includes(tag)) item.tags.push(tag);
  }
  if (opts.signal?.aborted) throw new AbortedError();
  const list = [...items.values()];
  const entries = opts.format === 'oci-archive' ? await ociLayoutEntries(store, list, opts.signal) : await dockerArchiveEntries(store, list, opts.signal);
  await writeArchive(entries, destination, opts.signal);
}

/** The tag `ref` named the image by (short form), or undefined for an id or a digest reference, as Docker saves those untagged. */
function tagOf(ref: string, image: ImageRecord): string | undefined {
  if (isImageId(ref)) return undefined;
  try {
    const parsed = parseReference(ref);
    if (parsed.digest !== undefined) return undefined;
    const name = familiarName(parsed);
    return image.repoTags.includes(name) ? name : undefined;
  } catch {
    return undefined; // an id prefix
  }
}
