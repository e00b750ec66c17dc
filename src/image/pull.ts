/**
 * `docker pull`: an image from a registry into the local store.
 *
 * The reference is resolved for one platform (the manifest, from an index when
 * the image has several, and the config, both verified against their digests).
 * Layers whose ChainID is already in the store are skipped ("Already exists");
 * the others are downloaded a few at a time, and each download is streamed into
 * two places at once, never held in memory: unpacked into the store as a layer,
 * and written to the blob store as the compressed blob it is, so that push and
 * save can hand out exactly the bytes the registry had.
 *
 * Layers are named by ChainID, which covers every layer below, so the store
 * publishes a layer only once its parent is there. Unpacking does not have to
 * wait for that: an overlay layer's files do not depend on the layers below it
 * (whiteouts are recorded as whiteouts, not applied), so every layer is
 * downloaded, decompressed and extracted into a temporary directory as soon as
 * it has a download slot, and only the final rename waits for the parent
 * (`parentReady` of {@link ImageStore.addLayer}). Nothing is buffered to wait
 * for a parent, and a slow base layer does not hold up the others' transfer.
 *
 * A pull that fails or is aborted removes what it had stored (layers and blobs
 * no image uses) before it rejects, so a retry starts clean.
 * @module
 */

import { createReadStream } from 'node:fs';
import createDebug from 'debug';
import { AbortedError, InvalidImageError, NoMatchingPlatformError, UnsupportedError } from '../errors.js';
import { chainIds, isSha256Digest } from './digest.js';
import { parseImage } from './oci.js';
import { familiarName, formatReference, parseReference, type ImageReference } from './reference.js';
import type { RegistryClient, ResolvedImage } from './registry/client.js';
import type { Descriptor } from './registry/manifest.js';
import { formatPlatform, normalizePlatform, parsePlatform, platformMatches, type Platform } from './registry/platform.js';
import type { ImageRecord, ImageStore } from './store.js';
import { coalesce } from './chunks.js';
import { tee } from './tee.js';

const debug = createDebug('dockless:pull');

/** How many layers are downloaded at once by default (Docker's `max-concurrent-downloads`). */
export const DEFAULT_PULL_CONCURRENCY = 3;

/**
 * Where a layer is in a pull:
 * - `waiting`: queued for a download slot;
 * - `downloading`: bytes arriving (they are unpacked as they arrive);
 * - `extracting`: all bytes are in, the layer is being finished and published;
 * - `exists`: the store already has the layer, nothing is downloaded;
 * - `done`: the layer is in the store.
 */
export type PullStatus = 'waiting' | 'downloading' | 'extracting' | 'exists' | 'done';

/** One step of one layer of a pull, for progress displays. */
export interface PullProgress {
  /** The short id Docker shows for the layer: 12 hex digits of its blob digest. */
  id: string;
  /** Digest of the layer's blob as the registry serves it (compressed). */
  digest: string;
  /** Position of the layer in the image, 0 for the base layer. */
  index: number;
  status: PullStatus;
  /** Bytes of the blob received so far (`total` once the layer is `exists` or `done`). */
  current: number;
  /** Size of the blob in bytes. */
  total: number;
}

/** Options of {@link pullImage}. */
export interface PullImageOptions {
  /** The platform to pull from a multi-platform image (`linux/arm64`); the host's by default. */
  platform?: string | Platform;
  /** Called for every layer as its status or byte count changes. Errors it throws are ignored. */
  onProgress?: (progress: PullProgress) => void;
  /** Aborting stops the pull and removes what it stored; the pull then rejects with {@link AbortedError}. */
  signal?: AbortSignal;
  /** How many layers to download at once; default {@link DEFAULT_PULL_CONCURRENCY}. */
  concurrency?: number;
}

/** One layer to bring in: where it comes from and what it must become. */
interface LayerPlan {
  index: number;
  descriptor: Descriptor & { digest: `sha256:${string}` };
  diffId: string;
  chainId: string;
  /** ChainID of the layer below, null for the base layer. */
  parent: string | null;
}

/** Layers and blobs this pull put into the store, to take out again when it fails. */
interface Stored {
  layers: string[];
  blobs: string[];
}

/**
 * Pulls `reference` into `store` and tags it there (`docker pull`). Already
 * present layers are reused; the others are downloaded `concurrency` at a time,
 * each unpacked as it streams in and kept as its compressed blob.
 * @returns the image as recorded, with the reference as a tag (or repo digest).
 * @throws {@link InvalidReferenceError} for a malformed reference;
 *   {@link ManifestNotFoundError} (an {@link ImageNotFoundError}) when the
 *   registry has no such repository, tag or digest; {@link NoMatchingPlatformError};
 *   {@link AuthenticationError}; {@link RegistryUnavailableError};
 *   {@link RegistryError} for other registry failures (among them a download
 *   that broke off and could not be resumed); {@link DigestMismatchError} when
 *   content does not match its digest; {@link InvalidImageError},
 *   {@link UnsafeLayerError} or {@link UnsupportedError} for images that
 *   cannot be stored; {@link AbortedError}. After any of them nothing of the
 *   pull is left in the store.
 */
export async function pullImage(
  store: ImageStore,
  client: RegistryClient,
  reference: string | ImageReference,
  options: PullImageOptions = {},
): Promise<ImageRecord> {
  const ref = typeof reference === 'string' ? parseReference(reference) : reference;
  const { signal } = options;
  if (signal?.aborted) throw new AbortedError();
  const resolved = await client.resolve(ref, { platform: options.platform, signal });
  checkPlatform(ref, resolved, options.platform);
  const plan = planLayers(ref, resolved);
  debug('pulling %s (%s): %d layers', familiarName(ref), resolved.manifestDigest, plan.length);

  const stored: Stored = { layers: [], blobs: [] };
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await fetchLayers(store, client, ref, plan, stored, options);
        return await store.addImage(resolved.configBytes, [formatReference(ref)], {
          bytes: resolved.manifestBytes,
          repoDigest: resolved.digest,
        });
      } catch (err) {
        // A layer this pull found in the store (or was about to build on) can be
        // taken away meanwhile: by an image removal, or by another pull of a
        // shared layer failing and cleaning up. Fetch what went missing, once.
        const lost = err instanceof InvalidImageError && !signal?.aborted && plan.some((l) => !store.hasLayer(l.chainId));
        if (attempt === 0 && lost) {
          debug('layers of %s went missing during the pull; fetching them again', familiarName(ref));
          continue;
        }
        throw err;
      }
    }
  } catch (err) {
    const removed = await store.discard(stored).catch((e: unknown) => {
      debug('cleaning up after a failed pull of %s: %s', familiarName(ref), (e as Error).message);
      return undefined;
    });
    if (removed) debug('failed pull of %s: removed %d layers, %d blobs', familiarName(ref), removed.layers.length, removed.blobs.length);
    if (signal?.aborted && !(err instanceof AbortedError)) throw new AbortedError();
    throw err;
  }
}

/**
 * With an explicit platform, a single-platform image must be of that platform
 * (as `docker pull --platform` insists); without one, an image for another
 * platform is pulled as Docker does (it may run under emulation).
 */
function checkPlatform(ref: ImageReference, resolved: ResolvedImage, platform: string | Platform | undefined): void {
  if (platform === undefined || resolved.index) return;
  const want = typeof platform === 'string' ? parsePlatform(platform) : normalizePlatform(platform);
  if (!platformMatches(want, resolved.platform)) {
    throw new NoMatchingPlatformError(familiarName(ref), formatPlatform(want), [formatPlatform(normalizePlatform(resolved.platform))]);
  }
}

/** The layers of a resolved image, checked to be storable before anything is downloaded. */
function planLayers(ref: ImageReference, resolved: ResolvedImage): LayerPlan[] {
  const name = familiarName(ref);
  if (!isSha256Digest(resolved.configDigest)) throw new UnsupportedError(`${name}: config digest ${resolved.configDigest} is not sha256`);
  // The store's own reading of the config, so that recording the image cannot fail after the downloads.
  const config = parseImage(resolved.configBytes);
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== resolved.layers.length) {
    throw new InvalidImageError(`${name}: the config has ${diffIds.length} diff_ids but the manifest ${resolved.layers.length} layers`);
  }
  const chains = chainIds(diffIds);
  return resolved.layers.map((descriptor, index): LayerPlan => {
    const diffId = diffIds[index]!;
    if (!isSha256Digest(descriptor.digest)) throw new UnsupportedError(`${name}: layer digest ${descriptor.digest} is not sha256`);
    if (!isSha256Digest(diffId)) throw new UnsupportedError(`${name}: diff id ${diffId} is not sha256`);
    if (/encrypted/.test(descriptor.mediaType)) throw new UnsupportedError(`${name}: encrypted layers (${descriptor.mediaType}) are not supported`);
    return {
      index,
      descriptor: descriptor as LayerPlan['descriptor'],
      diffId,
      chainId: chains[index]!,
      parent: index === 0 ? null : chains[index - 1]!,
    };
  });
}

/**
 * Brings every layer of `plan` into the store. Layers already there are
 * skipped; the rest run `concurrency` at a time (a slot is held while a layer
 * downloads and unpacks, not while it waits for its parent to be published).
 * The first failure stops the others, and is what this rejects with once they
 * have all settled (so no layer is published after it returns).
 */
async function fetchLayers(
  store: ImageStore,
  client: RegistryClient,
  ref: ImageReference,
  plan: LayerPlan[],
  stored: Stored,
  options: PullImageOptions,
): Promise<void> {
  const report = reporter(options.onProgress);
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const slots = limiter(options.concurrency ?? DEFAULT_PULL_CONCURRENCY);
  const published: Promise<void>[] = [];
  const failures: unknown[] = [];

  for (const layer of plan) {
    const size = layer.descriptor.size;
    if (store.hasLayer(layer.chainId)) {
      report(layer, 'exists', size);
      published.push(Promise.resolve());
      continue;
    }
    report(layer, 'waiting', 0);
    const below = published[layer.index - 1];
    const task = slots((release) => fetchLayer(store, client, ref, layer, { below, release, signal, report, stored }));
    task.catch((error: unknown) => {
      failures.push(error);
      stop.abort();
    });
    published.push(task);
  }
  await Promise.allSettled(published);
  if (failures.length) throw failures[0];
}

interface LayerContext {
  /** Settles when the layer below is in the store (absent for the base layer). */
  below: Promise<void> | undefined;
  /** Gives the download slot to the next layer. */
  release: () => void;
  signal: AbortSignal;
  report: Reporter;
  stored: Stored;
}

/** Downloads one layer (or reads its blob, when the store has it) into the store. */
async function fetchLayer(store: ImageStore, client: RegistryClient, ref: ImageReference, layer: LayerPlan, ctx: LayerContext): Promise<void> {
  const { signal, report } = ctx;
  if (signal.aborted) throw new AbortedError();
  const { descriptor } = layer;
  const total = descriptor.size;
  const addOptions = {
    parentChainId: layer.parent,
    diffId: layer.diffId,
    // The download checks it as it reads (a stored blob was checked when written): not hashed again.
    verifiedDigest: descriptor.digest,
    signal,
    parentReady: async () => {
      ctx.release();
      await ctx.below;
    },
  };

  if (store.hasBlob(descriptor.digest)) {
    // Kept from an earlier pull whose layer was removed since: no download needed.
    report(layer, 'extracting', total);
    await store.addLayer(createReadStream(store.blobPath(descriptor.digest)), addOptions);
  } else {
    report(layer, 'downloading', 0);
    let shown = 0;
    const blob = await client.fetchBlob(ref, descriptor, {
      signal,
      onProgress: (done) => {
        // About a hundred updates per layer are plenty for a progress bar.
        if (done < total && done - shown < total / 100) return;
        shown = done;
        report(layer, done < total ? 'downloading' : 'extracting', done);
      },
    });
    // In large chunks for both: each pays per chunk (gunzip and the blob's
    // writes a threadpool round trip, the stream steps a few promises).
    const [toLayer, toBlob] = tee(coalesce(blob, 1 << 20));
    const written = store.writeBlob(toBlob, descriptor.digest, { signal, verified: true }).then(() => {
      ctx.stored.blobs.push(descriptor.digest);
    });
    const added = store.addLayer(toLayer, addOptions).catch((err: unknown) => {
      // The blob side goes on reading, so that its verdict on the bytes is known.
      toLayer.destroy();
      throw err;
    });
    const [blobResult, layerResult] = await Promise.allSettled([written, added]);
    // Bytes that do not match their digest, or a download that broke off, are
    // the cause of whatever the unpacking made of them (a zlib or tar error),
    // so the blob's failure is the one reported.
    if (blobResult.status === 'rejected') throw blobResult.reason;
    if (layerResult.status === 'rejected') throw layerResult.reason;
  }
  ctx.stored.layers.push(layer.chainId);
  report(layer, 'done', total);
}

type Reporter = (layer: LayerPlan, status: PullStatus, current: number) => void;

function reporter(onProgress: PullImageOptions['onProgress']): Reporter {
  return (layer, status, current) => {
    if (!onProgress) return;
    const { digest, size } = layer.descriptor;
    try {
      onProgress({
        id: digest.slice(7, 19),
        digest,
        index: layer.index,
        status,
        current: status === 'exists' || status === 'done' ? size : current,
        total: size,
      });
    } catch (err) {
      debug('onProgress threw: %s', (err as Error)?.message);
    }
  };
}

/**
 * Runs at most `max` tasks at once, in the order they were submitted. A task
 * may give its slot back early (`release`); it is given back at the latest
 * when the task settles.
 */
function limiter(max: number): <T>(task: (release: () => void) => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: Array<() => void> = [];
  return async (task) => {
    if (active < max) active++;
    else await new Promise<void>((resolve) => queue.push(resolve));
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      const next = queue.shift();
      if (next) next(); // the slot passes straight to the next task
      else active--;
    };
    try {
      return await task(release);
    } finally {
      release();
    }
  };
}
