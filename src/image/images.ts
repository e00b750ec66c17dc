import type { FileLock } from '../state/lock.js';
import type { ImageRuntimeConfig } from '../container/config.js';
import { nativeFsOps } from './native-fsops.js';
import { ImageStore, type ImageInspect, type ImageRecord, type ImportOptions, type RemoveImageResult } from './store.js';

/** An image as listed (`docker images`). */
export type ImageSummary = ImageRecord;
/** Options for {@link Images.import}. */
export type ImageImportOptions = ImportOptions;
export type { ImageInspect, RemoveImageResult };

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

  /** @internal */
  constructor(
    root: string,
    lock: FileLock,
    private readonly usedBy: (imageId: string) => string[],
  ) {
    this.store = ImageStore.open(root, { lock: (fn) => lock.run(fn), fsops: nativeFsOps });
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

  /** Removes images no tag points at and no container uses (`docker image prune`). */
  prune(): Promise<RemoveImageResult> {
    return this.store.prune({ usedBy: this.usedBy });
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
