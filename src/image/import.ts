/**
 * `docker import`: a root file system (a directory, a tar file plain, gzip or
 * zstd, or a tar stream) becomes a one-layer image.
 * @module
 */

import { Readable } from 'node:stream';
import createDebug from 'debug';
import { closeSync, createReadStream, lstatSync, openSync, readdirSync, readlinkSync, readSync, statSync, constants } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { AbortedError, DocklessError, InvalidOptionError } from '../errors.js';
import { parseOptions } from '../validate.js';
import { applyChanges } from './changes.js';
import { dumpXattrsWithGetfattr, portableFsOps, type FsOps } from './fsops.js';
import { hostPlatform, ImageConfigSchema, type ImageConfig, type OciImage } from './oci.js';
import { parseReference } from './reference.js';
import type { ImageRecord, ImageStore, LayerRecord } from './store.js';
import { tee } from './tee.js';

const debug = createDebug('dockless:image');
import { encodeTarHeader, TAR_END, tarPadding, type TarHeaderInput } from './tar.js';

/** A target platform as `os/arch[/variant]` (`linux/arm64`) or as its parts. */
export type PlatformSpec = string | { os?: string; architecture?: string; variant?: string };

/** Options of `engine.images.import` ({@link Images.import}). */
export interface ImportOptions {
  /** Tag the image with this reference (`myimage`, `myimage:1`); untagged when absent. */
  ref?: string;
  /** Initial execution parameters (Env, Cmd, WorkingDir …), before `changes` apply. */
  config?: Partial<ImageConfig>;
  /**
   * Dockerfile instructions applied to the config, as `docker import --change`:
   * CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME, STOPSIGNAL
   * (exec/JSON or shell form where Docker allows both).
   */
  changes?: string[];
  /** Platform recorded in the image; defaults to the host's (`linux/amd64` on x64). */
  platform?: PlatformSpec;
  /** Comment of the image's history entry (`docker import --message`); default `Imported from <source>`. */
  message?: string;
  signal?: AbortSignal;
}

const ImportOptionsSchema = z.strictObject({
  ref: z.string().optional(),
  config: ImageConfigSchema.optional(),
  changes: z.array(z.string()).optional(),
  platform: z
    .union([
      z.string(),
      z.strictObject({ os: z.string().optional(), architecture: z.string().optional(), variant: z.string().optional() }),
    ])
    .optional(),
  message: z.string().optional(),
  signal: z.instanceof(AbortSignal).optional(),
});

function parsePlatform(spec: PlatformSpec | undefined): { os: string; architecture: string; variant?: string } {
  const host = hostPlatform();
  if (spec === undefined) return host;
  const parts = typeof spec === 'string' ? spec.split('/') : [spec.os ?? host.os, spec.architecture ?? host.architecture, spec.variant];
  const [os, architecture, variant] = parts;
  const word = /^[a-z0-9_.-]+$/i;
  if (!os || !architecture || parts.length > 3 || ![os, architecture].every((p) => word.test(p)) || (variant !== undefined && !word.test(variant))) {
    throw new InvalidOptionError('platform', `invalid platform ${JSON.stringify(spec)}: expected os/architecture[/variant]`);
  }
  const arch = architecture.toLowerCase() === 'x86_64' ? 'amd64' : architecture.toLowerCase() === 'aarch64' ? 'arm64' : architecture.toLowerCase();
  return variant ? { os: os.toLowerCase(), architecture: arch, variant } : { os: os.toLowerCase(), architecture: arch };
}

/** @internal Implements {@link ImageStore.import}. */
export async function importImage(
  store: ImageStore,
  fsops: FsOps,
  source: string | NodeJS.ReadableStream,
  options: ImportOptions = {},
): Promise<ImageRecord> {
  // Validate everything before touching the store, so bad input leaves nothing behind.
  const opts = parseOptions(ImportOptionsSchema, options) as ImportOptions;
  if (opts.ref !== undefined) {
    const ref = parseReference(opts.ref);
    if (ref.digest) throw new InvalidOptionError('ref', 'an imported image cannot be tagged with a digest reference');
  }
  const platform = parsePlatform(opts.platform);
  const config = applyChanges((opts.config ?? {}) as ImageConfig, opts.changes ?? []);
  if (opts.signal?.aborted) throw new AbortedError();

  let stream: NodeJS.ReadableStream | AsyncIterable<Uint8Array>;
  let label = '-';
  let fromDirectory = false;
  if (typeof source === 'string') {
    const path = resolve(source);
    let st;
    try {
      st = statSync(path);
    } catch (err) {
      throw new InvalidOptionError('source', `${path}: ${(err as NodeJS.ErrnoException).code ?? 'cannot stat'}`);
    }
    label = path;
    fromDirectory = st.isDirectory();
    if (fromDirectory) stream = packDirectory(path, fsops, opts.signal);
    else if (st.isFile()) stream = createReadStream(path);
    else throw new InvalidOptionError('source', `${path} is neither a directory nor a file`);
  } else if (source && typeof (source as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
    stream = source;
  } else {
    throw new InvalidOptionError('source', 'must be a path or a readable stream');
  }

  const layer = fromDirectory ? await store.addLayer(stream, { parentChainId: null, signal: opts.signal }) : await addKeepingBytes(store, stream, opts.signal);
  const created = goTime(new Date());
  const image: OciImage = {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config,
    rootfs: { type: 'layers', diff_ids: [layer.diffId] },
    history: [{ created, comment: opts.message ?? `Imported from ${label}` }],
  };
  return store.addImage(JSON.stringify(image), opts.ref !== undefined ? [opts.ref] : []);
}

/**
 * Unpacks an imported tar while keeping its bytes as the layer's blob: another
 * tool's tar (GNU tar's `./` names, other orders) never packs back to the same
 * DiffID, and without its own bytes the image could not be pushed or saved.
 * A directory import needs none of this: dockless's own packing is reproducible.
 */
async function addKeepingBytes(store: ImageStore, source: NodeJS.ReadableStream | AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<LayerRecord> {
  const [forLayer, forBlob] = tee(Readable.from(source as AsyncIterable<Uint8Array>, { objectMode: false }));
  const stop = new AbortController();
  const both = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  const [layer, blob] = await Promise.allSettled([
    store.addLayer(forLayer, { parentChainId: null, ...(signal ? { signal } : {}) }).catch((err: unknown) => {
      stop.abort(); // no use keeping the bytes of a refused layer
      throw err;
    }),
    store.writeBlob(forBlob, undefined, { signal: both }),
  ]);
  if (layer.status === 'rejected') {
    if (blob.status === 'fulfilled') await store.discard({ blobs: [blob.value.digest] });
    throw layer.reason;
  }
  // A failed copy only costs reproducibility later (push/save say so then).
  if (blob.status === 'rejected') debug('import: keeping the tar bytes failed: %s', blob.reason);
  return layer.value;
}

/**
 * A time as Go's RFC 3339 encoder writes it (`.38Z`, not `.380Z`): tools
 * written in Go (skopeo, Docker) re-encode image configs when they convert
 * them, and only a config already in that form keeps its digest, the image id.
 */
function goTime(d: Date): string {
  return d.toISOString().replace(/\.?0+Z$/, 'Z');
}

const CHUNK = 256 * 1024;
const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_OPAQUE = '.wh..wh..opq';

/** Options of {@link packDirectory}. */
export interface PackOptions {
  /**
   * The directory is an unpacked layer (overlay lower-layer form): its overlay
   * whiteouts become OCI ones again, a 0/0 character device `<name>` the empty
   * file `.wh.<name>` (mode 0600, as Docker writes it) and a directory with
   * `trusted.overlay.opaque=y` an empty `.wh..wh..opq` right after the
   * directory's own entry. Whiteout entries get mtime 0: unpacking does not
   * keep theirs, and a fixed value keeps the tar deterministic.
   */
  layer?: boolean;
}

/**
 * A directory tree as a tar stream (root entry left out, names sorted, so the
 * same tree gives the same DiffID). Symlinks are stored, never followed; files
 * with several links become one file and hard links to it; sockets are skipped,
 * as Docker does. Extended attributes are kept except `security.selinux` (a host
 * label) and `trusted.overlay.*` (overlay's own bookkeeping).
 */
export async function* packDirectory(root: string, fsops: FsOps, signal?: AbortSignal, options: PackOptions = {}): AsyncGenerator<Buffer> {
  const bulk = fsops.llistxattr === portableFsOps.llistxattr ? dumpXattrsWithGetfattr(root) : undefined;
  const rawXattrs = (path: string): Map<string, Uint8Array> | undefined =>
    bulk ? bulk.get(path) : new Map(fsops.llistxattr(path).map((n) => [n, fsops.lgetxattr(path, n)] as const));
  const isOpaque = (path: string): boolean => {
    const value = rawXattrs(path)?.get('trusted.overlay.opaque');
    return value !== undefined && Buffer.from(value).toString() === 'y';
  };
  const xattrsOf = (path: string): Map<string, Uint8Array> | undefined => {
    const all = rawXattrs(path);
    if (!all) return undefined;
    const kept = new Map<string, Uint8Array>();
    for (const [name, value] of all) {
      if (name === 'security.selinux' || name.startsWith('trusted.overlay.')) continue;
      kept.set(name, value);
    }
    return kept.size ? kept : undefined;
  };
  const links = new Map<string, string>();

  async function* walk(rel: string): AsyncGenerator<Buffer> {
    const names = readdirSync(rel ? join(root, rel) : root).sort();
    for (const name of names) {
      if (signal?.aborted) throw new AbortedError();
      const r = rel ? `${rel}/${name}` : name;
      const path = join(root, r);
      const st = lstatSync(path);
      const base: TarHeaderInput = {
        name: r,
        type: 'file',
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: Math.floor(st.mtimeMs / 1000),
      };
      if (st.isSocket()) continue;
      const xattrs = xattrsOf(path);
      if (xattrs) base.xattrs = xattrs;
      if (st.isDirectory()) {
        yield encodeTarHeader({ ...base, type: 'directory' });
        if (options.layer && isOpaque(path)) {
          yield encodeTarHeader({ name: `${r}/${WHITEOUT_OPAQUE}`, type: 'file', mode: st.mode & 0o777, uid: st.uid, gid: st.gid, mtime: 0 });
        }
        yield* walk(r);
      } else if (st.isSymbolicLink()) {
        yield encodeTarHeader({ ...base, type: 'symlink', linkname: readlinkSync(path) });
      } else if (st.isFIFO()) {
        yield encodeTarHeader({ ...base, type: 'fifo' });
      } else if (options.layer && st.isCharacterDevice() && st.rdev === 0) {
        const whiteout = rel ? `${rel}/${WHITEOUT_PREFIX}${name}` : `${WHITEOUT_PREFIX}${name}`;
        yield encodeTarHeader({ name: whiteout, type: 'file', mode: 0o600, uid: st.uid, gid: st.gid, mtime: 0 });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = st.rdev;
        const major = ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
        const minor = (rdev & 0xff) | ((rdev >>> 12) & ~0xff);
        yield encodeTarHeader({ ...base, type: st.isCharacterDevice() ? 'char' : 'block', devmajor: major, devminor: minor });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? links.get(key) : undefined;
        if (first !== undefined) {
          yield encodeTarHeader({ ...base, type: 'link', linkname: first });
          continue;
        }
        if (st.nlink > 1) links.set(key, r);
        yield encodeTarHeader({ ...base, size: st.size });
        yield* fileContent(path, st.size);
        yield tarPadding(st.size);
      }
    }
  }

  yield* walk('');
  yield TAR_END;
}

async function* fileContent(path: string, size: number): AsyncGenerator<Buffer> {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    let left = size;
    while (left > 0) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, left));
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) throw new DocklessError(`${path} shrank while it was being imported`, 'ERR_IMPORT_CHANGED');
      left -= n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
  } finally {
    closeSync(fd);
  }
}
