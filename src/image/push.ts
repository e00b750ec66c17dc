/**
 * `docker push`: an image's layer blobs, config and manifest to a registry.
 *
 * Each layer is prepared (its distributable blob found or made, see the
 * layer-blobs module) and sent at once, a few layers at a time: a blob the
 * repository has is skipped, one another repository of the same registry is
 * known to hold is mounted from there, anything else is uploaded. The config
 * follows, then the manifest, put under the tag. The pushed `repo@digest` is
 * added to the image's repo digests and the repositories holding each blob are
 * remembered, so that pushing the same layers elsewhere can mount them.
 * @module
 */

import { createReadStream } from 'node:fs';
import { z } from 'zod';
import { AbortedError, ImageNotFoundError, InvalidReferenceError } from '../errors.js';
import { parseOptions } from '../validate.js';
import type { Sha256Digest } from './digest.js';
import { buildManifest, manifestFormat, originalManifest, type BlobDescriptor } from './distribution.js';
import { familiarName, formatRepository, parseReference, type ImageReference } from './reference.js';
import type { RegistryClient, RegistryCredentials } from './registry/index.js';
import type { ImageStore, LayerBlobInfo } from './store.js';

/** What `onProgress` reports, once per step of each blob. */
export interface PushProgress {
  /** What the event is about. */
  kind: 'layer' | 'config' | 'manifest';
  /** Position of the layer, bottom layer 0 (layers only). */
  index?: number;
  /** The blob's or manifest's digest, once known (a layer being prepared may not have one yet). */
  digest?: string;
  /**
   * `preparing`: finding or making the layer's compressed blob; `exists`: the
   * repository has it; `mounted`: mounted from `mountedFrom`; `uploading`:
   * bytes are being sent (`current` of `total`); `pushed`: sent.
   */
  status: 'preparing' | 'exists' | 'mounted' | 'uploading' | 'pushed';
  /** Bytes sent so far (`uploading`). */
  current?: number;
  /** The blob's size. */
  total?: number;
  /** The repository (`registry/repo`) a `mounted` blob came from. */
  mountedFrom?: string;
}

/** Options of `engine.images.push`. */
export interface ImagePushOptions {
  /** Called for every step of every blob; keep it cheap. */
  onProgress?: (event: PushProgress) => void;
  /** Aborting stops the push with an {@link AbortedError}; blobs already sent stay on the registry. */
  signal?: AbortSignal;
  /** Credentials for the target registry, instead of the engine's or Docker's config. */
  auth?: RegistryCredentials;
}

/** What a push sent. */
export interface PushResult {
  /** The reference pushed, fully qualified (`127.0.0.1:5000/app:1`). */
  reference: string;
  /** Digest of the manifest now under the tag. */
  digest: Sha256Digest;
  /** Media type of that manifest. */
  mediaType: string;
  /** Size of the manifest in bytes. */
  size: number;
}

/** @internal */
export const PushOptionsSchema = z.strictObject({
  onProgress: z.custom<(e: PushProgress) => void>((v) => typeof v === 'function', 'must be a function').optional(),
  signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'must be an AbortSignal').optional(),
  auth: z
    .strictObject({
      username: z.string().optional(),
      password: z.string().optional(),
      identityToken: z.string().optional(),
      registryToken: z.string().optional(),
    })
    .optional(),
});

// As Docker's default max-concurrent-uploads (5) would, minus what two cores can gzip at once.
const CONCURRENT_LAYERS = 3;

/** @internal The push target: a tag reference (`latest` when none is given). */
export function pushTarget(ref: string): ImageReference {
  const target = parseReference(ref);
  if (target.digest !== undefined) throw new InvalidReferenceError(ref, 'push needs a tag, not a digest');
  return target;
}

/** @internal Implements `engine.images.push`. */
export async function pushImage(store: ImageStore, client: RegistryClient, ref: string, options: ImagePushOptions = {}): Promise<PushResult> {
  const opts = parseOptions(PushOptionsSchema, options) as ImagePushOptions;
  const target = pushTarget(ref);
  const image = store.resolve(ref);
  const { signal } = opts;
  const progress = (e: PushProgress) => opts.onProgress?.(e);
  const repository = formatRepository(target);
  if (signal?.aborted) throw new AbortedError();

  const original = originalManifest(store, image, ['docker', 'oci']);
  const shipped: Array<LayerBlobInfo | undefined> = [];
  await mapLimit(image.chainIds, CONCURRENT_LAYERS, async (chainId, index) => {
    progress({ kind: 'layer', index, status: 'preparing' });
    let blob: BlobDescriptor;
    if (original) {
      blob = original.layers[index]!;
    } else {
      const info = await store.layerBlob(chainId, { signal });
      shipped[index] = info;
      blob = { mediaType: '', digest: info.digest, size: info.size };
    }
    await pushBlob(store, client, target, blob, { kind: 'layer', index }, progress, signal);
  });

  const manifest = original ?? buildManifest(store, image, shipped as LayerBlobInfo[], manifestFormat(shipped as LayerBlobInfo[], 'docker'));
  await pushBlob(store, client, target, manifest.config, { kind: 'config' }, progress, signal);
  const digest = (await client.pushManifest(target, manifest.bytes, manifest.mediaType, { signal })) as Sha256Digest;
  progress({ kind: 'manifest', digest, status: 'pushed', total: manifest.bytes.length });

  await store.noteBlobSources([manifest.config.digest, ...manifest.layers.map((l) => l.digest)], repository);
  await store.addRepoDigest(image.id, `${repository}@${digest}`).catch((err: unknown) => {
    // Removed locally while it was being pushed: the push itself succeeded.
    if (!(err instanceof ImageNotFoundError)) throw err;
  });
  return { reference: familiarName(target), digest, mediaType: manifest.mediaType, size: manifest.bytes.length };
}

async function pushBlob(
  store: ImageStore,
  client: RegistryClient,
  target: ImageReference,
  blob: { digest: string; size: number },
  what: Pick<PushProgress, 'kind' | 'index'>,
  progress: (e: PushProgress) => void,
  signal: AbortSignal | undefined,
): Promise<void> {
  const base = { ...what, digest: blob.digest, total: blob.size };
  const mountFrom = mountSource(store, blob.digest, target);
  let announced = false;
  const result = await client.pushBlob(target, blob, () => createReadStream(store.blobPath(blob.digest), { highWaterMark: 1 << 20 }), {
    ...(mountFrom ? { mountFrom } : {}),
    signal,
    onProgress: (current) => {
      announced = true;
      progress({ ...base, status: 'uploading', current });
    },
  });
  if (result.status === 'exists') progress({ ...base, status: 'exists' });
  else if (result.status === 'mounted') progress({ ...base, status: 'mounted', mountedFrom: `${target.registry}/${mountFrom}` });
  else {
    if (!announced) progress({ ...base, status: 'uploading', current: blob.size });
    progress({ ...base, status: 'pushed' });
  }
}

/**
 * A repository of the target's registry, other than the target, that holds the
 * blob: one it was pushed to or pulled from (by the blob sources the store
 * keeps, then by the repo digests of pulled images whose manifest names it).
 * Only a hint: a registry that cannot mount makes it an ordinary upload.
 */
function mountSource(store: ImageStore, digest: string, target: ImageReference): string | undefined {
  const candidates = [...store.blobSources(digest)];
  for (const image of store.list()) {
    if (!image.manifestDigest || !store.hasBlob(image.manifestDigest)) continue;
    if (!store.readBlob(image.manifestDigest).includes(digest)) continue;
    for (const repoDigest of image.repoDigests) {
      try {
        candidates.push(formatRepository(parseReference(repoDigest)));
      } catch {
        // not a reference we can mount from
      }
    }
  }
  for (const candidate of candidates) {
    const slash = candidate.indexOf('/');
    const registry = candidate.slice(0, slash);
    const repo = candidate.slice(slash + 1);
    if (registry === target.registry && repo !== target.repository) return repo;
  }
  return undefined;
}

/** Runs `fn` over `items` with at most `limit` at a time; the first failure rejects (the rest finish first). */
async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: { error: unknown } | undefined;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (error) {
        failed ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed) throw failed.error;
}
