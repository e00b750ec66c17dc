import type { FileLock } from '../state/lock.js';
import type { ImageRuntimeConfig } from '../container/config.js';
import { nativeFsOps } from './native-fsops.js';
import { ImageStore, type ImageInspect, type ImageRecord, type ImportOptions, type RemoveImageResult } from './store.js';
import { ImageNotFoundError, InvalidOptionError } from '../errors.js';
import { parseOptions } from '../validate.js';
import { pullImage } from './pull.js';
import { imagePullOptionsSchema, type ImagePullOptions } from './pull-options.js';
import { isImageId, parseReference } from './reference.js';
import { RegistryClient } from './registry/client.js';
import { z } from 'zod';
import type { ImageDiskUsage, ImageUsage } from './store.js';
import { pushImage, pushTarget, PushOptionsSchema, type ImagePushOptions, type PushProgress } from './push.js';
import { saveImages, type ImageSaveOptions } from './archive/save.js';
import { loadImages, type ImageLoadOptions } from './archive/load.js';
import type { ImageArchiveFormat } from './archive/items.js';

/** An image as listed (`docker images`). */
export type ImageSummary = ImageRecord;
/** Options for {@link Images.import}. */
export type ImageImportOptions = ImportOptions;
export type { ImageInspect, RemoveImageResult };
export type { ImagePullOptions };
export type { ImageDiskUsage, ImageUsage, PushProgress, ImagePushOptions, ImageSaveOptions, ImageLoadOptions, ImageArchiveFormat };

/** Options of {@link Images.prune}. */
export interface ImagePruneOptions {
  /** Remove tagged images too, when no container uses them (`docker image prune -a`). */
  all?: boolean;
}

const ImagePruneOptionsSchema = z.strictObject({ all: z.boolean().optional() });

/**
 * When `create` and `run` pull their image (`docker run --pull`): `missing`
 * (the default) pulls it when no local image matches, `always` pulls it every
 * time (getting a moved tag's new image), `never` uses only local images.
 */
export type PullPolicy = 'missing' | 'always' | 'never';

/**
 * The engine's local images: `engine.images`. A front for the content-addressed
 * store that knows which containers use an image, so removal is refused while
 * one does.
 */
export class Images {
  /** @internal */
  readonly store: ImageStore;
  // The start path resolves the same image over and over; its config and layer
  // dirs never change for an id, so they are cached per id.
  private readonly runtimeConfigs = new Map<string, ImageRuntimeConfig>();
  private readonly dirs = new Map<string, string[]>();

  /** The registry client pulls go through (the engine's, with its mirrors and credentials). @internal */
  readonly registry: RegistryClient;

  /** @internal */
  constructor(
    root: string,
    lock: FileLock,
    private readonly usedBy: (imageId: string) => string[],
    registry: RegistryClient = new RegistryClient(),
  ) {
    this.store = ImageStore.open(root, { lock: (fn) => lock.run(fn), fsops: nativeFsOps });
    this.registry = registry;
  }

  /**
   * Makes an image from a root filesystem (`docker import`): a directory, or a tar
   * archive (plain, gzip or zstd) as a path or a stream. `changes` takes Dockerfile
   * instructions (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL).
   */
  import(source: string | NodeJS.ReadableStream, options: ImageImportOptions = {}): Promise<ImageSummary> {
    return this.store.import(source, options);
  }

  /** Every image (`docker images -a`). */
  list(): ImageSummary[] {
    return this.store.list();
  }

  /** Details of an image by reference or id (`docker image inspect`). Throws ImageNotFoundError. */
  inspect(refOrId: string): ImageInspect {
    return this.store.inspect(refOrId);
  }

  /** Adds a reference to an image (`docker tag`). */
  tag(refOrId: string, newRef: string): Promise<void> {
    return this.store.tag(refOrId, newRef);
  }

  /** Removes a reference; the image goes when its last reference does. */
  untag(ref: string): Promise<void> {
    return this.store.untag(ref);
  }

  /** Removes an image (`docker rmi`); refused while a container uses it unless `force`. */
  remove(refOrId: string, options: { force?: boolean } = {}): Promise<RemoveImageResult> {
    return this.store.remove(refOrId, { ...options, usedBy: this.usedBy });
  }

  /**
   * Removes images no tag points at and no container uses (`docker image
   * prune`); with `all`, every image no container uses, tagged or not (`docker
   * image prune -a`). Layers and blobs only they needed go with them.
   */
  async prune(options: ImagePruneOptions = {}): Promise<RemoveImageResult> {
    const o = parseOptions(ImagePruneOptionsSchema, options);
    return this.store.prune({ usedBy: this.usedBy, all: o.all ?? false });
  }

  /**
   * How much space images take, like the images part of `docker system df -v`:
   * how many there are and how many containers use, their size with shared
   * layers counted once, what layers they share, and what {@link prune} with
   * `all` would free.
   */
  diskUsage(): ImageDiskUsage {
    return this.store.diskUsage({ usedBy: this.usedBy });
  }

  /**
   * Uploads an image to its registry (`docker push`): `ref` is a local tag
   * naming the destination (`localhost:5000/app:1`). Layers the repository has
   * are skipped, layers another repository of that registry holds (one pushed
   * to or pulled from) are mounted, the rest are uploaded a few at a time; the
   * manifest (Docker schema 2; OCI when a layer is zstd; the pulled one,
   * unchanged, for a pulled image) goes last. A layer made by `import` is
   * packed and gzipped once and the blob kept for later pushes. The pushed
   * `repo@digest` is added to the image's repo digests.
   *
   * ```ts
   * await engine.images.tag('app:1', 'localhost:5000/team/app:1');
   * const digest = await engine.images.push('localhost:5000/team/app:1', {
   *   onProgress: (p) => console.log(p.kind, p.index, p.status, p.current, p.total),
   * });
   * ```
   * @returns the digest of the pushed manifest.
   * @throws {@link InvalidOptionError}, {@link InvalidReferenceError} (also for a
   *   digest reference); {@link ImageNotFoundError}; {@link AuthenticationError};
   *   {@link RegistryUnavailableError}; {@link RegistryError};
   *   {@link LayerNotReproducibleError}; {@link AbortedError}.
   */
  async push(ref: string, options: ImagePushOptions = {}): Promise<string> {
    if (typeof ref !== 'string' || ref === '') throw new InvalidOptionError('ref', 'must be a non-empty image reference');
    const o = parseOptions(PushOptionsSchema, options) as ImagePushOptions;
    const target = pushTarget(ref);
    const client = o.auth ? this.registry.withCredentials(target.registry, o.auth) : this.registry;
    return (await pushImage(this.store, client, ref, o)).digest;
  }

  /**
   * Writes images into one archive (`docker save`), to a file path (written
   * beside it and renamed into place when complete) or a writable stream.
   * `docker-archive` (the default) is what `docker load` reads, with
   * uncompressed layer tars; `oci-archive` is an OCI image layout with
   * compressed layer blobs. An image named by tag carries that tag; one named
   * by id goes untagged.
   *
   * ```ts
   * await engine.images.save(['app:1', 'busybox'], '/tmp/images.tar');
   * await engine.images.save(['app:1'], process.stdout, { format: 'oci-archive' });
   * ```
   * @throws {@link InvalidOptionError}; {@link ImageNotFoundError};
   *   {@link LayerNotReproducibleError}; {@link AbortedError}.
   */
  save(refs: readonly string[], destination: string | NodeJS.WritableStream, options: ImageSaveOptions = {}): Promise<void> {
    return saveImages(this.store, refs, destination, options);
  }

  /**
   * Adds the images of an archive (`docker load`): a docker-archive (from
   * `docker save` or skopeo, in any of its dialects) or an OCI image layout
   * tar, plain, gzip or zstd, as a path or a stream. Every blob is checked
   * against its digest and every layer against its DiffID; a bad archive is
   * refused and leaves nothing in the store.
   * @returns the loaded images, as listed.
   * @throws {@link InvalidOptionError}; {@link InvalidArchiveError} (not a tar,
   *   no manifest, a path outside the archive, …); {@link InvalidImageError};
   *   {@link DigestMismatchError}; {@link UnsafeLayerError}; {@link AbortedError}.
   */
  load(source: string | NodeJS.ReadableStream, options: ImageLoadOptions = {}): Promise<ImageSummary[]> {
    return loadImages(this.store, source, options);
  }

  /**
   * Downloads an image from its registry (`docker pull`) and tags it with `ref`
   * (or records the digest, for `name@sha256:…`). Layers the store has are
   * reused; the others are downloaded a few at a time and unpacked as they
   * stream in. Credentials come from `options.auth`, else the engine's
   * `registry.auth`, else Docker's config file.
   *
   * ```ts
   * await engine.images.pull('localhost:5000/app:1', {
   *   onProgress: (p) => console.log(p.id, p.status, p.current, p.total),
   * });
   * ```
   * @throws {@link InvalidOptionError}, {@link InvalidReferenceError};
   *   {@link ManifestNotFoundError} (an {@link ImageNotFoundError}) when the
   *   registry has no such repository, tag or digest;
   *   {@link NoMatchingPlatformError}; {@link AuthenticationError};
   *   {@link RegistryUnavailableError}; {@link RegistryError};
   *   {@link DigestMismatchError}; {@link InvalidImageError};
   *   {@link AbortedError}. A failed pull leaves nothing in the store.
   */
  async pull(ref: string, options: ImagePullOptions = {}): Promise<ImageSummary> {
    if (typeof ref !== 'string' || ref === '') throw new InvalidOptionError('ref', 'must be a non-empty image reference');
    const o = parseOptions(imagePullOptionsSchema, options);
    const parsed = parseReference(ref);
    const client = o.auth ? this.registry.withCredentials(parsed.registry, o.auth) : this.registry;
    return pullImage(this.store, client, parsed, {
      platform: o.platform,
      onProgress: o.onProgress,
      signal: o.signal,
      concurrency: o.concurrency,
    });
  }

  /**
   * The image a container is made from, pulled first as `policy` says.
   * @internal
   */
  async forContainer(refOrId: string, policy: PullPolicy, signal?: AbortSignal): Promise<ImageRecord> {
    if (policy === 'never') return this.store.resolve(refOrId);
    if (policy === 'missing') {
      const local = this.store.find(refOrId);
      if (local) return local;
      // An id names nothing a registry has (and `sha256:` would read as a repository).
      if (isImageId(refOrId) || refOrId.startsWith('sha256:')) throw new ImageNotFoundError(refOrId);
    } else if (isImageId(refOrId) || refOrId.startsWith('sha256:')) {
      throw new InvalidOptionError('pull', `cannot pull ${refOrId}: it is an image id, not a reference`);
    }
    return this.pull(refOrId, signal ? { signal } : {});
  }

  /** @internal */
  resolveRecord(refOrId: string): ImageRecord {
    return this.store.resolve(refOrId);
  }

  /** The image config a container starts from. @internal */
  runtimeConfig(imageId: string): ImageRuntimeConfig {
    let c = this.runtimeConfigs.get(imageId);
    if (!c) {
      c = this.store.config(imageId) as ImageRuntimeConfig;
      this.runtimeConfigs.set(imageId, c);
    }
    return c;
  }

  /** Layer directories of an image, topmost first (overlay's lowerdir order). @internal */
  layerDirs(imageId: string): string[] {
    let d = this.dirs.get(imageId);
    if (!d) {
      d = this.store.layerDirs(this.store.resolve(imageId));
      this.dirs.set(imageId, d);
    }
    return d;
  }
}
