/**
 * An image as it travels (to a registry, into an OCI layout): a manifest, its
 * config blob and its layer blobs, all in the store.
 *
 * An image that came with a manifest (a pull) goes out with those exact bytes
 * when every blob it names is still stored, so its digest is preserved, as
 * Docker does when pushing a pulled image. Otherwise a manifest is written:
 * Docker schema 2 (what registries and tools expect by default) unless a layer
 * is zstd-compressed, which only OCI can describe, or OCI is required.
 * @module
 */

import { statSync } from 'node:fs';
import { InvalidImageError } from '../errors.js';
import { sha256Digest, type Sha256Digest } from './digest.js';
import { layerMediaType, type ManifestFormat } from './layer-blobs.js';
import { MediaType, parseManifest } from './oci.js';
import type { ImageRecord, ImageStore, LayerBlobInfo } from './store.js';

/** A blob of an image, as a manifest describes it. */
export interface BlobDescriptor {
  mediaType: string;
  digest: Sha256Digest;
  size: number;
}

/** A manifest ready to send or write. */
export interface BuiltManifest {
  mediaType: string;
  bytes: Buffer;
  digest: Sha256Digest;
  config: BlobDescriptor;
  layers: BlobDescriptor[];
}

const MANIFEST_TYPE: Record<ManifestFormat, string> = { docker: MediaType.DockerManifest, oci: MediaType.OciManifest };
const CONFIG_TYPE: Record<ManifestFormat, string> = { docker: MediaType.DockerConfig, oci: MediaType.OciConfig };

/**
 * The manifest the image came with, when it may be sent again as it is: stored,
 * of an accepted format, naming the image's config, with every layer blob in
 * the store and of the size it claims.
 */
export function originalManifest(store: ImageStore, image: ImageRecord, accept: readonly ManifestFormat[]): BuiltManifest | undefined {
  if (!image.manifestDigest || !store.hasBlob(image.manifestDigest)) return undefined;
  let bytes: Buffer;
  let manifest;
  try {
    bytes = store.readBlob(image.manifestDigest);
    manifest = parseManifest(bytes);
  } catch {
    return undefined;
  }
  const mediaType = manifest.mediaType ?? MediaType.OciManifest;
  if (!accept.some((f) => MANIFEST_TYPE[f] === mediaType)) return undefined;
  if (manifest.config.digest !== image.id || manifest.layers.length !== image.diffIds.length) return undefined;
  const layers: BlobDescriptor[] = [];
  for (const l of manifest.layers) {
    if (!/^sha256:[a-f0-9]{64}$/.test(l.digest) || !store.hasBlob(l.digest)) return undefined;
    if (statSync(store.blobPath(l.digest)).size !== l.size) return undefined;
    layers.push({ mediaType: l.mediaType, digest: l.digest as Sha256Digest, size: l.size });
  }
  return {
    mediaType,
    bytes,
    digest: image.manifestDigest,
    config: { mediaType: manifest.config.mediaType, digest: image.id, size: manifest.config.size },
    layers,
  };
}

/**
 * The format a new manifest for these layers is written in: `prefer` unless a
 * layer is zstd, which Docker's schema 2 cannot describe.
 */
export function manifestFormat(layers: readonly LayerBlobInfo[], prefer: ManifestFormat): ManifestFormat {
  return layers.some((l) => l.compression === 'zstd') ? 'oci' : prefer;
}

/** A new manifest for an image whose layers ship as `layers` (bottom first). */
export function buildManifest(store: ImageStore, image: ImageRecord, layers: readonly LayerBlobInfo[], format: ManifestFormat): BuiltManifest {
  if (layers.length !== image.diffIds.length) throw new InvalidImageError(`image ${image.id} has ${image.diffIds.length} layers, ${layers.length} given`);
  const config: BlobDescriptor = { mediaType: CONFIG_TYPE[format], digest: image.id, size: statSync(store.blobPath(image.id)).size };
  const descriptors = layers.map((l) => ({ mediaType: layerMediaType(l.compression, format), digest: l.digest, size: l.size }));
  const mediaType = MANIFEST_TYPE[format];
  // Key order as Docker and containerd write it; the bytes are what the digest names.
  const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType, config, layers: descriptors }, null, 2));
  return { mediaType, bytes, digest: sha256Digest(bytes), config, layers: descriptors };
}
