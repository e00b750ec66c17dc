/**
 * What the archive formats exchange with saving and loading: images to write,
 * and images found in an archive, checked but not stored yet.
 * @module
 */

import { InvalidArchiveError } from '../../errors.js';
import type { Sha256Digest } from '../digest.js';
import { parseImage } from '../oci.js';
import { parseReference } from '../reference.js';
import type { ImageRecord } from '../store.js';
import type { SpooledFile } from './spool.js';

/** The formats `engine.images.save` writes and `load` reads. */
export type ImageArchiveFormat = 'docker-archive' | 'oci-archive';

/** An image to save, with the tags to name it by in the archive. */
export interface SaveItem {
  image: ImageRecord;
  /** Tags in Docker's short form (`busybox:latest`); none for an image saved by id. */
  tags: string[];
}

/** An image found in an archive: its config and layer files, checked, not yet stored. */
export interface LoadItem {
  id: Sha256Digest;
  config: Buffer;
  diffIds: Sha256Digest[];
  /** The layer files, bottom first (compressed or not). */
  layers: SpooledFile[];
  /** Tag references to give it. */
  refs: string[];
}

/**
 * Checks a config and its layers and makes the {@link LoadItem}; a second
 * mention of the same image only adds its tags.
 * @throws {@link InvalidImageError} for a malformed config; {@link InvalidArchiveError}.
 */
export function addLoadItem(items: Map<string, LoadItem>, id: Sha256Digest, config: Buffer, layers: SpooledFile[], refs: readonly string[], where: string): void {
  const image = parseImage(config);
  const diffIds = image.rootfs.diff_ids as Sha256Digest[];
  if (diffIds.length !== layers.length) {
    throw new InvalidArchiveError(`${where}: ${layers.length} layers, but its config lists ${diffIds.length} diff_ids`);
  }
  const tags = refs.map((r) => {
    try {
      const ref = parseReference(r);
      if (ref.digest !== undefined) throw new Error('a digest reference is not a tag');
      return r;
    } catch (err) {
      throw new InvalidArchiveError(`${where}: bad tag ${JSON.stringify(r)}: ${(err as Error).message}`, { cause: err });
    }
  });
  const existing = items.get(id);
  if (existing) {
    for (const t of tags) if (!existing.refs.includes(t)) existing.refs.push(t);
    return;
  }
  items.set(id, { id, config, diffIds, layers, refs: [...new Set(tags)] });
}
