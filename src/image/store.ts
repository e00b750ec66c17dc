/**
 * The local image store: content-addressed blobs, unpacked layers shared by
 * ChainID, and an index of images and their tags.
 *
 * ```
 * <root>/blobs/sha256/<hex>          configs, manifests, compressed layers (when kept)
 * <root>/layers/<chainid hex>/diff/  one unpacked layer, shared read-only by every image that has it
 * <root>/layers/<chainid hex>/meta.json
 * <root>/layers/<chainid hex>/blob.json   the compressed blob the layer ships as (push, save)
 * <root>/images.json                 images (id = sha256 of the config blob) and tags → image id
 * <root>/blob-sources.json           repositories known to hold a blob (cross-repository mounts)
 * ```
 *
 * Every file appears by rename of a complete temporary file, so readers never
 * see a partial blob, layer or index, and reads need no lock. Mutations of the
 * index (and the final step of adding a layer) run inside the `lock` function
 * given to {@link ImageStore.open}; the engine passes one that holds a flock on
 * its root so several processes can share one store.
 *
 * A layer's users are derived, never counted: a layer is in use while some
 * image in the index lists its ChainID.
 * @module
 */

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  write,
  writeSync,
  readdirSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AbortedError, DigestMismatchError, ImageConflictError, ImageInUseError, ImageNotFoundError, InvalidImageError, InvalidReferenceError } from '../errors.js';
import { coalesce } from './chunks.js';
import { chainIds, Digester, digestHex, sha256Digest, type Sha256Digest } from './digest.js';
import { resolveFsOps, type FsOps } from './fsops.js';
import { importImage, type ImportOptions } from './import.js';
import { LayerStore, processAlive, type AddLayerOptions, type LayerBlobInfo, type LayerRecord } from './layers.js';
import { ensureLayerBlob, openLayerTar, record as recordLayerBlob, type LayerBlobContext } from './layer-blobs.js';
import type { LayerSource } from './unpack.js';
import { parseImage, parseManifest, type History, type ImageConfig, type OciImage } from './oci.js';
import { familiarName, formatReference, formatRepository, isImageId, parseReference, type ImageReference } from './reference.js';

export type { AddLayerOptions, LayerBlobInfo, LayerRecord } from './layers.js';
export type { ImportOptions, PlatformSpec } from './import.js';
export type { LayerSource } from './unpack.js';

/** Runs `fn` while holding the store's lock. */
export type StoreLock = <T>(fn: () => Promise<T>) => Promise<T>;

/** Options of {@link ImageStore.open}. */
export interface ImageStoreOptions {
  /**
   * Serializes mutations. The store calls it around every change of the index
   * and around the final rename of a new layer, never around long work
   * (downloads, extraction), and never from inside itself, so it need not be
   * reentrant. Default: a queue that serializes callers in this process only.
   * Pass a flock-based lock when several processes share the root.
   */
  lock?: StoreLock;
  /**
   * mknod and xattr calls for layer extraction and directory import (Node lacks
   * them); the engine passes the native addon's. Default: {@link portableFsOps}.
   */
  fsops?: Partial<FsOps>;
}

/** An image in the store. */
export interface ImageRecord {
  /** `sha256:<hex>`: the digest of the image's config blob. */
  id: Sha256Digest;
  /** Tags in Docker's short form: `busybox:latest`, `ghcr.io/org/app:1`. */
  repoTags: string[];
  /** Digest references in Docker's short form: `busybox@sha256:…`. */
  repoDigests: string[];
  /** When the image was built (from its config), ISO 8601. */
  created?: string;
  /** Bytes of file content in all its layers. */
  size: number;
  architecture: string;
  os: string;
  variant?: string;
  /** Layer DiffIDs, bottom layer first. */
  diffIds: Sha256Digest[];
  /** Layer ChainIDs, bottom layer first. */
  chainIds: Sha256Digest[];
  /** Digest of the manifest the image was pulled with, when there was one. */
  manifestDigest?: Sha256Digest;
}

/** What `docker image inspect` shows, in the SDK's naming. */
export interface ImageInspect {
  id: Sha256Digest;
  repoTags: string[];
  repoDigests: string[];
  created?: string;
  author?: string;
  /** Docker's top-level image comment, when the config has one. */
  comment?: string;
  architecture: string;
  variant?: string;
  os: string;
  /** Bytes of file content in all layers. */
  size: number;
  /** Execution parameters (Env, Cmd, Entrypoint …). */
  config: ImageConfig;
  rootfs: { type: 'layers'; diff_ids: Sha256Digest[] };
  history: History[];
  /** Digest of the manifest the image was pulled with. */
  manifestDigest?: Sha256Digest;
  /** When a tag last pointed at this image (ISO 8601). */
  lastTagTime?: string;
}

/** Options of the store's image removal. */
export interface RemoveImageOptions {
  /**
   * Remove even when tagged in several repositories or used by containers. An
   * image a container uses loses its tags but stays (with its layers) until
   * nothing uses it, since deleting it would pull the files from under the
   * container; {@link ImageStore.prune} removes it later.
   */
  force?: boolean;
  /** Names or ids of the containers that use an image; none when absent. */
  usedBy?: (imageId: string) => string[];
}

/** What removing or pruning images did, as Docker reports it. */
export interface RemoveImageResult {
  /** References removed (short form). */
  untagged: string[];
  /** Image ids deleted. */
  deleted: Sha256Digest[];
  /** ChainIDs of layers deleted because no image uses them any more. */
  deletedLayers: Sha256Digest[];
}

/** One image in {@link ImageDiskUsage}. */
export interface ImageUsage {
  id: Sha256Digest;
  repoTags: string[];
  created?: string;
  /** Bytes of file content in its layers. */
  size: number;
  /** Of `size`, the bytes in layers other images have too. */
  sharedSize: number;
  /** Of `size`, the bytes in layers only this image has. */
  uniqueSize: number;
  /** Containers using it. */
  containers: number;
}

/** Images' disk usage, like the images part of `docker system df`. */
export interface ImageDiskUsage {
  /** Images in the store. */
  count: number;
  /** Images at least one container uses. */
  active: number;
  /** Bytes of file content in all layers, each layer counted once. */
  size: number;
  /** Bytes in layers that two or more images share (counted once). */
  sharedSize: number;
  /** Bytes of layers no image a container uses needs: what `prune({ all: true })` frees. */
  reclaimable: number;
  /** Bytes of stored blobs: configs, manifests, compressed layers kept for push and save. */
  blobSize: number;
  /** Per image, as `docker system df -v` lists them. */
  images: ImageUsage[];
}

/** The manifest that came with an image, for {@link ImageStore.addImage}. */
export interface ManifestInput {
  /** The manifest's bytes exactly as served (stored as a blob). */
  bytes: Uint8Array | string;
  /**
   * The digest the references point at, when it is not the manifest's own: an
   * index (manifest list) digest for a multi-platform pull. Recorded in
   * repoDigests, as Docker does.
   */
  repoDigest?: string;
}

interface StoredImage {
  id: Sha256Digest;
  diffIds: Sha256Digest[];
  chainIds: Sha256Digest[];
  size: number;
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  manifestDigest?: Sha256Digest;
  /** Canonical digest references: `docker.io/library/busybox@sha256:…`. */
  repoDigests: string[];
  added: string;
  lastTagTime?: string;
}

interface IndexFile {
  version: 1;
  images: Record<string, StoredImage>;
  /** Canonical tag reference (`docker.io/library/busybox:latest`) → image id. */
  tags: Record<string, Sha256Digest>;
}

const INDEX_FILE = 'images.json';
/** Which repositories hold which blobs (mount candidates for pushes). */
const BLOB_SOURCES_FILE = 'blob-sources.json';
const MAX_BLOB_SOURCES = 5;
const SHORT_ID = /^(?:sha256:)?([a-f0-9]{1,64})$/;

function familiar(canonical: string): string {
  return familiarName(parseReference(canonical));
}

const fsyncAsync = promisify(fsync);
const writeAsync = (fd: number, data: Uint8Array, offset: number, length: number) =>
  new Promise<number>((resolve, reject) => write(fd, data, offset, length, null, (err, n) => (err ? reject(err) : resolve(n))));

/** A queue that runs async functions one at a time (in this process). */
function processLock(): StoreLock {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn);
    tail = run.catch(() => undefined);
    return run;
  };
}

/** Writes `data` to `path` atomically: temporary file in the same directory, fsync, rename. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * The local image store. Reads are synchronous (they are on the container start
 * path); operations that write go through the lock and are async.
 */
export class ImageStore {
  /** The engine root this store lives in. */
  readonly root: string;
  private readonly blobDir: string;
  private readonly indexPath: string;
  private readonly layers: LayerStore;
  private readonly fsops: FsOps;
  private readonly lock: StoreLock;
  private cache: { key: string; index: IndexFile } | undefined;
  private readonly configCache = new Map<string, OciImage>();

  private constructor(root: string, opts: ImageStoreOptions) {
    this.root = root;
    this.fsops = resolveFsOps(opts.fsops);
    this.lock = opts.lock ?? processLock();
    this.blobDir = join(root, 'blobs', 'sha256');
    this.indexPath = join(root, INDEX_FILE);
    mkdirSync(this.blobDir, { recursive: true, mode: 0o700 });
    this.layers = new LayerStore(root, this.fsops, this.lock);
  }

  /**
   * Opens (creating its directories if needed) the store under `root`, e.g.
   * `/var/lib/dockless`. Cheap and synchronous: nothing is read until asked for.
   */
  static open(root: string, opts: ImageStoreOptions = {}): ImageStore {
    return new ImageStore(root, opts);
  }

  // ---------------------------------------------------------------- images

  /**
   * Like `docker import`: a root file system from a directory, a tar file
   * (plain, gzip or zstd, sniffed from its first bytes) or a tar stream becomes
   * a one-layer image.
   * @throws {@link InvalidOptionError} for bad options (nothing is stored),
   *   {@link InvalidReferenceError} for a bad `ref`, {@link UnsafeLayerError} for
   *   an archive entry that would leave the layer.
   */
  import(source: string | NodeJS.ReadableStream, opts?: ImportOptions): Promise<ImageRecord> {
    return importImage(this, this.fsops, source, opts);
  }

  /**
   * Finds an image by reference (`busybox` means `docker.io/library/busybox:latest`;
   * `name@sha256:…` matches a repo digest), by id (`sha256:<hex>` or bare hex),
   * or by a unique id prefix, tried in Docker's order.
   * @throws {@link ImageNotFoundError} when nothing (or more than one image, for a prefix) matches.
   */
  resolve(refOrId: string): ImageRecord {
    const image = this.find(refOrId);
    if (!image) throw new ImageNotFoundError(refOrId);
    return image;
  }

  /** Like {@link resolve}, but undefined when no image matches. */
  find(refOrId: string): ImageRecord | undefined {
    const index = this.readIndex();
    const stored = this.lookup(index, refOrId);
    return stored && this.toRecord(index, stored);
  }

  /** Every image, newest first. */
  list(): ImageRecord[] {
    const index = this.readIndex();
    return Object.values(index.images)
      .map((s) => this.toRecord(index, s))
      .sort((a, b) => (b.created ?? '').localeCompare(a.created ?? '') || a.id.localeCompare(b.id));
  }

  /** Everything known about an image, close to `docker image inspect`. @throws {@link ImageNotFoundError} */
  inspect(refOrId: string): ImageInspect {
    const index = this.readIndex();
    const stored = this.lookup(index, refOrId);
    if (!stored) throw new ImageNotFoundError(refOrId);
    const record = this.toRecord(index, stored);
    const oci = this.ociImage(record);
    const out: ImageInspect = {
      id: record.id,
      repoTags: record.repoTags,
      repoDigests: record.repoDigests,
      architecture: record.architecture,
      os: record.os,
      size: record.size,
      config: oci.config ?? {},
      rootfs: { type: 'layers', diff_ids: record.diffIds },
      history: oci.history ?? [],
    };
    if (record.created !== undefined) out.created = record.created;
    if (oci.author !== undefined) out.author = oci.author;
    if (typeof oci.comment === 'string') out.comment = oci.comment;
    if (record.variant !== undefined) out.variant = record.variant;
    if (record.manifestDigest !== undefined) out.manifestDigest = record.manifestDigest;
    if (stored.lastTagTime !== undefined) out.lastTagTime = stored.lastTagTime;
    return out;
  }

  /**
   * The image's execution parameters (the `config` member of its config blob):
   * Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels,
   * StopSignal, Healthcheck. Cached: config blobs never change.
   */
  config(image: ImageRecord | string): ImageConfig {
    return this.ociImage(image).config ?? {};
  }

  /** The whole config blob of an image, parsed. Cached. */
  ociImage(image: ImageRecord | string): OciImage {
    const id = typeof image === 'string' ? this.resolve(image).id : image.id;
    let oci = this.configCache.get(id);
    if (!oci) {
      oci = parseImage(readFileSync(this.blobPath(id)));
      this.configCache.set(id, oci);
    }
    return oci;
  }

  /** The image's layer directories, topmost first (overlayfs `lowerdir` order). No I/O. */
  layerDirs(image: ImageRecord): string[] {
    const dirs: string[] = [];
    for (let i = image.chainIds.length - 1; i >= 0; i--) dirs.push(this.layers.diffDir(image.chainIds[i]!));
    return dirs;
  }

  /**
   * Points `newRef` (a tag; `busybox` means `busybox:latest`) at an image. A tag
   * held by another image moves; that image stays, untagged, as in Docker.
   * @throws {@link ImageNotFoundError}, {@link InvalidReferenceError} (also for a digest reference).
   */
  async tag(refOrId: string, newRef: string): Promise<void> {
    const ref = parseReference(newRef);
    if (ref.digest !== undefined) throw new InvalidReferenceError(newRef, 'cannot tag with a digest reference');
    await this.mutate((index) => {
      const stored = this.lookup(index, refOrId);
      if (!stored) throw new ImageNotFoundError(refOrId);
      index.tags[formatReference(ref)] = stored.id;
      stored.lastTagTime = new Date().toISOString();
    });
  }

  /**
   * Removes one reference (a tag, or a `name@digest` repo digest) and nothing
   * else: the image stays even when it was its last reference.
   * @throws {@link ImageNotFoundError} when no image has that reference.
   */
  async untag(ref: string): Promise<void> {
    const parsed = parseReference(ref);
    await this.mutate((index) => {
      if (!this.removeRef(index, parsed)) throw new ImageNotFoundError(ref);
    });
  }

  /**
   * Removes an image the way `docker rmi` does. Given a reference, that
   * reference is removed, and the image with it if it was the last one. Given an
   * id, the image is removed with all its references (refused, unless `force`,
   * when it is tagged in more than one repository). Layers and blobs no
   * remaining image needs are deleted.
   * @throws {@link ImageNotFoundError}; {@link ImageInUseError} when `usedBy`
   *   names containers and `force` is not set; {@link ImageConflictError}.
   */
  async remove(refOrId: string, opts: RemoveImageOptions = {}): Promise<RemoveImageResult> {
    const result: RemoveImageResult = { untagged: [], deleted: [], deletedLayers: [] };
    await this.mutate((index) => {
      const stored = this.lookup(index, refOrId);
      if (!stored) throw new ImageNotFoundError(refOrId);
      const users = opts.usedBy?.(stored.id) ?? [];
      const refs = this.refsOf(index, stored);
      const byName = this.isNameLookup(index, refOrId, stored);

      if (byName) {
        const ref = parseReference(refOrId);
        if (refs.length === 1 && users.length > 0 && !opts.force) throw new ImageInUseError(refOrId, users);
        const removed = this.removeRef(index, ref);
        if (removed) result.untagged.push(familiarName(ref));
        // A repository's digest references go with its last tag, as in Docker.
        const repo = formatRepository(ref);
        if (ref.tag !== undefined && !Object.entries(index.tags).some(([t, id]) => id === stored.id && formatRepository(parseReference(t)) === repo)) {
          for (const d of stored.repoDigests.filter((d) => formatRepository(parseReference(d)) === repo)) {
            stored.repoDigests = stored.repoDigests.filter((x) => x !== d);
            result.untagged.push(familiar(d));
          }
        }
        if (this.refsOf(index, stored).length > 0) return;
      } else {
        const repos = new Set(refs.map((r) => formatRepository(parseReference(r))));
        if (repos.size > 1 && !opts.force) {
          throw new ImageConflictError(refOrId, `image is referenced in multiple repositories (${[...repos].join(', ')})`);
        }
        if (users.length > 0 && !opts.force) throw new ImageInUseError(refOrId, users);
        for (const r of refs) {
          this.removeRef(index, parseReference(r));
          result.untagged.push(familiar(r));
        }
      }
      if (users.length > 0) return; // forced while in use: untagged, kept for the containers
      this.deleteImage(index, stored, result);
    });
    return result;
  }

  /**
   * Deletes untagged images no container uses (`docker image prune`), with the
   * layers and blobs only they needed. With `all`, every image no container
   * uses goes, tagged or not (`docker image prune -a`); its references are
   * reported in `untagged`.
   */
  async prune(opts: { usedBy?: (imageId: string) => string[]; all?: boolean } = {}): Promise<RemoveImageResult> {
    const result: RemoveImageResult = { untagged: [], deleted: [], deletedLayers: [] };
    await this.mutate((index) => {
      for (const stored of Object.values(index.images)) {
        const refs = this.refsOf(index, stored);
        if (refs.length > 0 && !opts.all) continue;
        if ((opts.usedBy?.(stored.id) ?? []).length > 0) continue;
        for (const r of refs) result.untagged.push(familiar(r));
        this.deleteImage(index, stored, result);
      }
    });
    return result;
  }

  /**
   * Removes temporary files and directories left by processes that died while
   * writing a blob or unpacking a layer. Safe while other processes work: it
   * skips temporaries of live processes.
   * @returns the names removed.
   */
  async removeLeftovers(): Promise<string[]> {
    return this.lock(async () => {
      const removed = this.layers.removeLeftovers();
      for (const dir of [this.blobDir, this.root]) {
        for (const name of readdirSync(dir)) {
          const m = /\.?tmp-(\d+)-[a-f0-9]+$/.exec(name);
          if (!m || processAlive(Number(m[1]))) continue;
          rmSync(join(dir, name), { force: true });
          removed.push(name);
        }
      }
      return removed;
    });
  }

  // ---------------------------------------------------------------- for the registry client

  /** True when the blob is in the store. */
  hasBlob(digest: string): boolean {
    return existsSync(this.blobPath(digest));
  }

  /** Where the blob lives (whether or not it is there yet). @throws {@link InvalidOptionError} for a non-sha256 digest. */
  blobPath(digest: string): string {
    return join(this.blobDir, digestHex(digest));
  }

  /** The bytes of a stored blob. @throws ENOENT error when absent. */
  readBlob(digest: string): Buffer {
    return readFileSync(this.blobPath(digest));
  }

  /**
   * Stores a blob, streaming it to a temporary file while hashing, then renaming
   * it into place (fsync'd), so a blob is never visible partly written. If
   * `expectedDigest` is given and already stored, a stream is not read (it is
   * destroyed). With `verified`, `data` is a source that fails instead of
   * ending when its bytes do not match `expectedDigest` (a registry blob
   * stream), so it is not hashed a second time.
   * @throws {@link DigestMismatchError} when the content does not hash to
   *   `expectedDigest`; nothing is stored then.
   */
  async writeBlob(
    data: Uint8Array | string | NodeJS.ReadableStream | AsyncIterable<Uint8Array>,
    expectedDigest?: string,
    opts: { signal?: AbortSignal; verified?: boolean } = {},
  ): Promise<{ digest: Sha256Digest; size: number }> {
    if (expectedDigest !== undefined) {
      const path = this.blobPath(expectedDigest);
      if (existsSync(path)) {
        (data as { destroy?: () => void }).destroy?.();
        return { digest: expectedDigest as Sha256Digest, size: statSync(path).size };
      }
    }
    const chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array> =
      typeof data === 'string' ? [Buffer.from(data)] : data instanceof Uint8Array ? [data] : (data as AsyncIterable<Uint8Array>);
    const tmp = join(this.blobDir, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    const trusted = opts.verified === true && expectedDigest !== undefined;
    const digester = trusted ? undefined : new Digester();
    let size = 0;
    const fd = openSync(tmp, 'wx', 0o600);
    let closed = false;
    try {
      // Written on the threadpool, in large pieces: a pull unpacks the same
      // bytes on this thread meanwhile.
      for await (const chunk of coalesce(chunks, 1 << 20)) {
        if (opts.signal?.aborted) throw new AbortedError();
        digester?.update(chunk);
        size += chunk.byteLength;
        for (let off = 0; off < chunk.byteLength; ) off += await writeAsync(fd, chunk, off, chunk.byteLength - off);
      }
      await fsyncAsync(fd);
      closeSync(fd);
      closed = true;
      const digest = digester ? digester.digest() : (expectedDigest as Sha256Digest);
      if (expectedDigest !== undefined && digest !== expectedDigest) throw new DigestMismatchError(expectedDigest, digest);
      renameSync(tmp, this.blobPath(digest));
      return { digest, size };
    } finally {
      if (!closed) closeSync(fd);
      rmSync(tmp, { force: true });
    }
  }

  /**
   * Unpacks a layer diff (plain, gzip or zstd tar stream) on top of
   * `parentChainId`, verifying `diffId` when given. Returns at once, without
   * reading `diff`, if that layer is already there.
   * With `parentReady`, the layer is unpacked while its parent is still on its
   * way and published once the parent is there (see {@link AddLayerOptions}).
   * @throws {@link DigestMismatchError} (nothing stored), {@link UnsafeLayerError},
   *   {@link InvalidImageError} when the parent layer is missing.
   */
  addLayer(diff: LayerSource, opts: AddLayerOptions = {}): Promise<LayerRecord> {
    return this.layers.add(diff, opts);
  }

  /** True when the layer with this ChainID is unpacked in the store. */
  hasLayer(chainId: string): boolean {
    return this.layers.has(chainId);
  }

  /** A layer's record, or undefined. */
  layer(chainId: string): LayerRecord | undefined {
    return this.layers.get(chainId);
  }

  /** ChainIDs of all unpacked layers, used or not. */
  listLayers(): Sha256Digest[] {
    return this.layers.list();
  }

  /**
   * Deletes the given layers and blobs unless an image in the index needs them:
   * undoes what an operation that failed half-way (a pull) had stored, so that it
   * leaves nothing behind. Absent ones are skipped.
   * @param items.layers ChainIDs, bottom layer first (deleted top first, so no
   *   layer is ever without its parent).
   * @returns what was deleted.
   */
  async discard(items: { layers?: readonly string[]; blobs?: readonly string[] }): Promise<{ layers: Sha256Digest[]; blobs: Sha256Digest[] }> {
    return this.lock(async () => {
      const images = Object.values(this.readIndex().images);
      const layersInUse = new Set<string>(images.flatMap((s) => s.chainIds));
      const blobsInUse = new Set<string>(images.flatMap((s) => this.blobsOf(s)));
      const out: { layers: Sha256Digest[]; blobs: Sha256Digest[] } = { layers: [], blobs: [] };
      for (const chainId of [...(items.layers ?? [])].reverse()) {
        if (layersInUse.has(chainId) || !this.layers.has(chainId)) continue;
        this.layers.remove(chainId);
        out.layers.push(chainId as Sha256Digest);
      }
      for (const digest of items.blobs ?? []) {
        if (blobsInUse.has(digest)) continue;
        try {
          unlinkSync(this.blobPath(digest));
          out.blobs.push(digest as Sha256Digest);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
      return out;
    });
  }

  /**
   * Records an image whose layers are all in the store (add them first with
   * {@link addLayer}): stores the config blob (and the manifest blob), and
   * points `refs` at it. A tag ref (`name:tag`, default `latest`) becomes a tag;
   * a digest ref (`name@sha256:…`) a repo digest. With a manifest, every ref's
   * repository also gets `repo@<manifest or repoDigest>`.
   * @throws {@link InvalidImageError} when the config or manifest is malformed or
   *   a layer is missing (a concurrent removal may have deleted a shared layer:
   *   add it again and retry); {@link InvalidReferenceError}.
   */
  async addImage(config: Uint8Array | string, refs: readonly string[] = [], manifest?: ManifestInput): Promise<ImageRecord> {
    const bytes = typeof config === 'string' ? Buffer.from(config) : Buffer.from(config.buffer, config.byteOffset, config.byteLength);
    const oci = parseImage(bytes);
    const id = sha256Digest(bytes);
    const parsedRefs = refs.map((r) => parseReference(r));
    const diffIds = oci.rootfs.diff_ids as Sha256Digest[];
    const chains = chainIds(diffIds);

    let manifestBytes: Buffer | undefined;
    let manifestDigest: Sha256Digest | undefined;
    let repoDigest: string | undefined;
    if (manifest) {
      manifestBytes = Buffer.from(typeof manifest.bytes === 'string' ? Buffer.from(manifest.bytes) : manifest.bytes);
      const m = parseManifest(manifestBytes);
      manifestDigest = sha256Digest(manifestBytes);
      if (m.config.digest !== id) throw new InvalidImageError(`manifest names config ${m.config.digest}, not ${id}`);
      if (m.layers.length !== diffIds.length) {
        throw new InvalidImageError(`manifest has ${m.layers.length} layers but the config has ${diffIds.length} diff_ids`);
      }
      repoDigest = manifest.repoDigest ?? manifestDigest;
      digestHex(repoDigest, 'manifest.repoDigest');
    }

    let record: ImageRecord | undefined;
    await this.mutate((index) => {
      let size = 0;
      chains.forEach((chainId, i) => {
        const layer = this.layers.get(chainId);
        if (!layer) throw new InvalidImageError(`layer ${i} (diff ${diffIds[i]}) is not in the store`);
        size += layer.size;
      });
      if (!existsSync(this.blobPath(id))) writeFileAtomic(this.blobPath(id), bytes);
      if (manifestBytes && manifestDigest && !existsSync(this.blobPath(manifestDigest))) {
        writeFileAtomic(this.blobPath(manifestDigest), manifestBytes);
      }
      const now = new Date().toISOString();
      const stored: StoredImage = index.images[id] ?? {
        id,
        diffIds,
        chainIds: chains,
        size,
        architecture: oci.architecture ?? '',
        os: oci.os ?? '',
        repoDigests: [],
        added: now,
      };
      if (oci.created !== undefined) stored.created = oci.created;
      if (oci.variant !== undefined) stored.variant = oci.variant;
      if (manifestDigest) stored.manifestDigest = manifestDigest;
      const addDigest = (d: string) => {
        if (!stored.repoDigests.includes(d)) stored.repoDigests.push(d);
      };
      for (const ref of parsedRefs) {
        if (ref.digest !== undefined) addDigest(`${formatRepository(ref)}@${ref.digest}`);
        else {
          index.tags[formatReference(ref)] = id;
          stored.lastTagTime = now;
        }
        if (repoDigest) addDigest(`${formatRepository(ref)}@${repoDigest}`);
      }
      index.images[id] = stored;
      record = this.toRecord(index, stored);
    });
    return record!;
  }

  // ---------------------------------------------------------------- push, save, load, disk usage

  /**
   * The compressed blob a layer is pushed and saved as: the blob it was pulled
   * or loaded as, else a gzip blob packed from its files (made once and
   * remembered, see the layer-blobs module).
   * @throws {@link LayerNotReproducibleError} when the layer has no blob and its
   *   files do not pack back to its DiffID; {@link InvalidImageError} when the
   *   layer is not in the store.
   */
  layerBlob(chainId: string, opts: { signal?: AbortSignal } = {}): Promise<LayerBlobInfo> {
    return ensureLayerBlob(this.blobContext(), chainId, opts);
  }

  /**
   * The layer's uncompressed tar (`size` bytes hashing to its DiffID), as
   * `docker save` writes it; the stream fails with {@link DigestMismatchError}
   * rather than end when the content does not match.
   */
  layerTar(chainId: string, opts: { signal?: AbortSignal } = {}): Promise<{ size: number; diffId: Sha256Digest; stream: AsyncIterable<Buffer> }> {
    return openLayerTar(this.blobContext(), chainId, opts);
  }

  /** Records the blob a layer ships as (the blob must be stored, the layer present). */
  setLayerBlob(chainId: string, info: LayerBlobInfo): Promise<void> {
    return recordLayerBlob(this.blobContext(), chainId, info);
  }

  /**
   * A new private scratch directory on the store's file system (files in it can
   * be moved into the store with {@link adoptBlob}). The caller removes it; one
   * left by a dead process goes with {@link removeLeftovers}.
   */
  makeTempDir(): string {
    return this.layers.makeTempDir();
  }

  /**
   * Moves a complete file into the blobs as `digest`, which the caller computed
   * from its content while writing it. When that blob is already stored the file
   * is deleted instead.
   * @returns true when the blob is new.
   */
  adoptBlob(path: string, digest: string): boolean {
    const dest = this.blobPath(digest);
    if (existsSync(dest)) {
      rmSync(path, { force: true });
      return false;
    }
    renameSync(path, dest);
    return true;
  }

  /**
   * Adds a digest reference (`registry/repo@sha256:…`, what a push returned) to
   * an image's repo digests.
   * @throws {@link ImageNotFoundError}, {@link InvalidReferenceError} (not a digest reference).
   */
  async addRepoDigest(refOrId: string, digestRef: string): Promise<void> {
    const ref = parseReference(digestRef);
    if (ref.digest === undefined) throw new InvalidReferenceError(digestRef, 'not a digest reference');
    const canonical = `${formatRepository(ref)}@${ref.digest}`;
    await this.mutate((index) => {
      const stored = this.lookup(index, refOrId);
      if (!stored) throw new ImageNotFoundError(refOrId);
      if (!stored.repoDigests.includes(canonical)) stored.repoDigests.push(canonical);
    });
  }

  /**
   * Repositories (`registry/repo`, most recent first) known to hold a blob,
   * because it was pushed there or pulled from there: candidates for a
   * cross-repository mount.
   */
  blobSources(digest: string): string[] {
    return [...(this.readBlobSources()[digest] ?? [])];
  }

  /**
   * Remembers that `repository` (`registry/repo`) holds these blobs. Entries of
   * blobs no longer stored are dropped on the way, which keeps the file as small
   * as the store.
   */
  async noteBlobSources(digests: readonly string[], repository: string): Promise<void> {
    await this.lock(async () => {
      const sources = this.readBlobSources();
      for (const digest of digests) {
        sources[digest] = [repository, ...(sources[digest] ?? []).filter((r) => r !== repository)].slice(0, MAX_BLOB_SOURCES);
      }
      for (const digest of Object.keys(sources)) if (!this.hasBlob(digest)) delete sources[digest];
      writeFileAtomic(join(this.root, BLOB_SOURCES_FILE), JSON.stringify({ version: 1, sources }));
    });
  }

  /**
   * Disk usage of images, like the images part of `docker system df -v`. Sizes
   * are bytes of file content in layers, each layer counted once.
   */
  diskUsage(opts: { usedBy?: (imageId: string) => string[] } = {}): ImageDiskUsage {
    const images = this.list();
    const layerSize = new Map<string, number>();
    const imagesPerLayer = new Map<string, number>();
    const activeLayers = new Set<string>();
    const containers = new Map<string, number>();
    for (const image of images) {
      const users = opts.usedBy?.(image.id).length ?? 0;
      containers.set(image.id, users);
      for (const chainId of new Set(image.chainIds)) {
        if (!layerSize.has(chainId)) layerSize.set(chainId, this.layers.get(chainId)?.size ?? 0);
        imagesPerLayer.set(chainId, (imagesPerLayer.get(chainId) ?? 0) + 1);
        if (users > 0) activeLayers.add(chainId);
      }
    }
    const sum = (ids: Iterable<string>) => [...ids].reduce((n, id) => n + (layerSize.get(id) ?? 0), 0);
    const shared = (id: string) => (imagesPerLayer.get(id) ?? 0) > 1;
    let blobSize = 0;
    for (const name of readdirSync(this.blobDir)) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue; // temporaries
      try {
        blobSize += statSync(join(this.blobDir, name)).size;
      } catch {
        // deleted meanwhile
      }
    }
    return {
      count: images.length,
      active: images.filter((i) => (containers.get(i.id) ?? 0) > 0).length,
      size: sum(layerSize.keys()),
      sharedSize: sum([...layerSize.keys()].filter(shared)),
      reclaimable: sum([...layerSize.keys()].filter((id) => !activeLayers.has(id))),
      blobSize,
      images: images.map((image) => {
        const layers = [...new Set(image.chainIds)];
        const sharedSize = sum(layers.filter(shared));
        const size = sum(layers);
        const usage: ImageUsage = {
          id: image.id,
          repoTags: image.repoTags,
          size,
          sharedSize,
          uniqueSize: size - sharedSize,
          containers: containers.get(image.id) ?? 0,
        };
        if (image.created !== undefined) usage.created = image.created;
        return usage;
      }),
    };
  }

  private blobContext(): LayerBlobContext {
    return {
      layers: this.layers,
      fsops: this.fsops,
      lock: this.lock,
      hasBlob: (d) => this.hasBlob(d),
      blobPath: (d) => this.blobPath(d),
      writeBlob: (data, expected, opts) => this.writeBlob(data, expected, opts),
      discard: (items) => this.discard(items),
    };
  }

  private readBlobSources(): Record<string, string[]> {
    try {
      const file = JSON.parse(readFileSync(join(this.root, BLOB_SOURCES_FILE), 'utf8')) as { sources?: Record<string, string[]> };
      return file.sources ?? {};
    } catch {
      // Only hints: a missing or damaged file means no mount candidates.
      return {};
    }
  }

  // ---------------------------------------------------------------- internals

  private readIndex(): IndexFile {
    let key: string;
    try {
      const st = statSync(this.indexPath, { bigint: true });
      key = `${st.ino}:${st.mtimeNs}:${st.ctimeNs}:${st.size}`;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return { version: 1, images: {}, tags: {} };
    }
    if (this.cache?.key === key) return this.cache.index;
    const index = JSON.parse(readFileSync(this.indexPath, 'utf8')) as IndexFile;
    this.cache = { key, index };
    return index;
  }

  /** Runs `change` on a fresh copy of the index under the lock and writes it back. */
  private mutate(change: (index: IndexFile) => void): Promise<void> {
    return this.lock(async () => {
      const index = structuredClone(this.readIndex());
      change(index);
      writeFileAtomic(this.indexPath, JSON.stringify(index));
      this.cache = undefined;
    });
  }

  private lookup(index: IndexFile, refOrId: string): StoredImage | undefined {
    if (typeof refOrId !== 'string' || refOrId === '') return undefined;
    if (isImageId(refOrId)) return index.images[refOrId.startsWith('sha256:') ? refOrId : `sha256:${refOrId}`];
    let ref: ImageReference | undefined;
    try {
      ref = parseReference(refOrId);
    } catch {
      ref = undefined;
    }
    if (ref?.digest !== undefined) {
      const wanted = `${formatRepository(ref)}@${ref.digest}`;
      const hit = Object.values(index.images).find((s) => s.repoDigests.includes(wanted));
      if (hit) return hit;
    } else if (ref) {
      const id = index.tags[formatReference(ref)];
      if (id && index.images[id]) return index.images[id];
    }
    const m = SHORT_ID.exec(refOrId);
    if (m) {
      const hits = Object.keys(index.images).filter((id) => id.startsWith(`sha256:${m[1]}`));
      if (hits.length === 1) return index.images[hits[0]!];
    }
    return undefined;
  }

  /** True when `refOrId` found `stored` as a name (tag or repo digest), not as an id or id prefix. */
  private isNameLookup(index: IndexFile, refOrId: string, stored: StoredImage): boolean {
    if (isImageId(refOrId)) return false;
    let ref: ImageReference;
    try {
      ref = parseReference(refOrId);
    } catch {
      return false;
    }
    if (ref.digest !== undefined) return stored.repoDigests.includes(`${formatRepository(ref)}@${ref.digest}`);
    return index.tags[formatReference(ref)] === stored.id;
  }

  /** Canonical tags and repo digests of an image. */
  private refsOf(index: IndexFile, stored: StoredImage): string[] {
    const tags = Object.entries(index.tags)
      .filter(([, id]) => id === stored.id)
      .map(([t]) => t);
    return [...tags, ...stored.repoDigests];
  }

  /** Removes a tag or repo digest; false when no image had it. */
  private removeRef(index: IndexFile, ref: ImageReference): boolean {
    if (ref.digest !== undefined) {
      const wanted = `${formatRepository(ref)}@${ref.digest}`;
      let found = false;
      for (const s of Object.values(index.images)) {
        if (s.repoDigests.includes(wanted)) {
          s.repoDigests = s.repoDigests.filter((d) => d !== wanted);
          found = true;
        }
      }
      return found;
    }
    const key = formatReference(ref);
    if (!(key in index.tags)) return false;
    delete index.tags[key];
    return true;
  }

  /** Drops an image from the index, then the layers and blobs nothing else needs. Under the lock. */
  private deleteImage(index: IndexFile, stored: StoredImage, result: RemoveImageResult): void {
    // Read before the layers go: a layer's blob.json names a blob the image needs.
    const doomedBlobs = this.blobsOf(stored);
    delete index.images[stored.id];
    for (const [t, id] of Object.entries(index.tags)) if (id === stored.id) delete index.tags[t];
    result.deleted.push(stored.id);
    const remaining = Object.values(index.images);

    const layersInUse = new Set(remaining.flatMap((s) => s.chainIds));
    for (const chainId of stored.chainIds) {
      if (layersInUse.has(chainId) || result.deletedLayers.includes(chainId)) continue;
      this.layers.remove(chainId);
      result.deletedLayers.push(chainId);
    }

    const blobsInUse = new Set<string>();
    for (const s of remaining) for (const d of this.blobsOf(s)) blobsInUse.add(d);
    for (const d of doomedBlobs) {
      if (blobsInUse.has(d)) continue;
      try {
        unlinkSync(this.blobPath(d));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    this.configCache.delete(stored.id);
  }

  /**
   * Blobs an image needs: config, manifest, the manifest's layer blobs, and each
   * layer's own blobs (the one it was unpacked from, its distributable one).
   */
  private blobsOf(stored: StoredImage): string[] {
    const out: string[] = [stored.id];
    for (const chainId of stored.chainIds) {
      const layer = this.layers.get(chainId);
      // A plain-tar blob is kept only for an imported tar (its own bytes).
      if (layer && (layer.compression !== 'none' || existsSync(this.blobPath(layer.blobDigest)))) out.push(layer.blobDigest);
      const shipped = this.layers.blobInfo(chainId);
      if (shipped) out.push(shipped.digest);
    }
    if (stored.manifestDigest) {
      out.push(stored.manifestDigest);
      try {
        const m = parseManifest(readFileSync(this.blobPath(stored.manifestDigest)));
        for (const l of m.layers) if (l.digest.startsWith('sha256:')) out.push(l.digest);
      } catch {
        // A missing or unreadable manifest only means fewer blobs to keep or delete.
      }
    }
    return out;
  }

  private toRecord(index: IndexFile, s: StoredImage): ImageRecord {
    const repoTags = Object.entries(index.tags)
      .filter(([, id]) => id === s.id)
      .map(([t]) => familiar(t))
      .sort();
    const record: ImageRecord = {
      id: s.id,
      repoTags,
      repoDigests: s.repoDigests.map(familiar),
      size: s.size,
      architecture: s.architecture,
      os: s.os,
      diffIds: [...s.diffIds],
      chainIds: [...s.chainIds],
    };
    if (s.created !== undefined) record.created = s.created;
    if (s.variant !== undefined) record.variant = s.variant;
    if (s.manifestDigest !== undefined) record.manifestDigest = s.manifestDigest;
    return record;
  }
}
