/**
 * Unpacking one layer (a tar stream, plain, gzip or zstd) into a directory in
 * the form overlayfs reads as a lower layer, computing the layer's digests on
 * the way.
 *
 * Layer content is attacker-controlled. Every entry name is cleaned (a leading
 * `/` is dropped, as Docker does; `..` components are refused outright, as GNU
 * tar does), and every parent directory is checked with lstat to be a real
 * directory made by this extraction: nothing is ever created or written through
 * a symlink, so no entry can reach outside the destination. Symlinks are stored
 * as they are and their targets never followed. The destination is private to
 * the extraction (the store extracts into a temporary directory and renames it
 * into place), so nothing can change under these checks.
 *
 * OCI whiteouts become overlay whiteouts: `.wh.<name>` a 0/0 character device
 * named `<name>`, `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its
 * directory.
 * @module
 */

import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  rmSync,
  chmodSync,
  symlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { setImmediate as turn } from 'node:timers/promises';
import createDebug from 'debug';
import { AbortedError, DigestMismatchError, UnsafeLayerError } from '../errors.js';
import { decompress, detectCompression, peek, type Compression } from './compression.js';
import { Digester, digesting, type Sha256Digest } from './digest.js';
import { errnoCode, resolveFsOps, type FsOps } from './fsops.js';
import { TarParser, type TarHeader, type TarSink } from './tar.js';

const log = createDebug('dockless:image');

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';
const WHITEOUT_OPAQUE = '.wh..wh..opq';
const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

/** A layer as bytes: a Node stream, or any (async) iterable of chunks. */
export type LayerSource = NodeJS.ReadableStream | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** Options of {@link unpackLayer}. */
export interface UnpackOptions {
  /** File system calls Node lacks (mknod, xattrs); defaults to {@link portableFsOps}. */
  fsops?: Partial<FsOps>;
  /** Aborting stops the extraction with an {@link AbortedError}. */
  signal?: AbortSignal;
  /**
   * The input's digest, when its source verifies it: a source that fails
   * instead of ending when its bytes do not match (a registry blob stream).
   * The input is then not hashed a second time; it is reported as
   * {@link UnpackResult.digest}.
   */
  verifiedDigest?: Sha256Digest;
}

/** What {@link unpackLayer} found out about the layer. */
export interface UnpackResult {
  /** sha256 of the uncompressed tar stream: the layer's DiffID. */
  diffId: Sha256Digest;
  /** sha256 of the input as given (the compressed blob's digest). */
  digest: Sha256Digest;
  /** Compression sniffed from the input's magic bytes. */
  compression: Compression;
  /** Bytes of input read. */
  compressedSize: number;
  /** Bytes of uncompressed tar. */
  tarSize: number;
  /** Bytes of regular file content written (Docker's layer size). */
  size: number;
  /** Number of tar entries processed. */
  entries: number;
}

/**
 * Streams a layer into `dest`, an existing empty directory that nothing else
 * writes to. On failure `dest` is left partly filled; the caller removes it.
 * @throws {@link UnsafeLayerError} naming the first entry that would escape
 *   `dest` or is otherwise unacceptable; {@link TarFormatError} on a malformed
 *   archive; {@link AbortedError} when `signal` fires.
 */
export async function unpackLayer(
  source: LayerSource,
  dest: string,
  opts: UnpackOptions = {},
): Promise<UnpackResult> {
  const { signal } = opts;
  if (signal?.aborted) throw new AbortedError();
  const input = source as (AsyncIterable<Uint8Array> | Iterable<Uint8Array>) & { destroy?: (err?: Error) => void };
  const onAbort = () => input.destroy?.(new AbortedError());
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const { head, stream } = await peek(input, 4);
    const compression = detectCompression(head);
    // sha256 costs about half as much CPU as inflating: the input is hashed
    // only when nobody else does; the uncompressed tar (the DiffID) always.
    const raw = opts.verifiedDigest && compression !== 'none' ? new Counter() : new Digester();
    const rawBytes = digesting(stream, raw);
    const tar = compression === 'none' ? raw : new Digester();
    const tarBytes = compression === 'none' ? rawBytes : digesting(decompress(rawBytes, compression), tar);

    // Entries are written synchronously as the parser meets them: one await
    // per chunk of tar, none per entry.
    const extractor = new Extractor(dest, resolveFsOps(opts.fsops));
    const parser = new TarParser(extractor);
    try {
      for await (const chunk of tarBytes) {
        for (let off = 0; off < chunk.length; off += SLICE) {
          if (signal?.aborted) throw new AbortedError();
          // After the end marker the rest is only hashed.
          if (!parser.finished) parser.push(off === 0 && chunk.length <= SLICE ? chunk : chunk.subarray(off, off + SLICE));
          // A turn of the event loop per slice: that is where inflating the
          // next chunk on the threadpool is started, so it goes on while this
          // thread writes out what it has.
          await turn();
        }
      }
      parser.end();
    } finally {
      extractor.close();
    }
    if (signal?.aborted) throw new AbortedError();
    extractor.finish();
    const digest = raw instanceof Digester ? raw.digest() : opts.verifiedDigest!;
    if (opts.verifiedDigest && digest !== opts.verifiedDigest) throw new DigestMismatchError(opts.verifiedDigest, digest);
    return {
      digest,
      diffId: tar === raw ? digest : (tar as Digester).digest(),
      compression,
      compressedSize: raw.size,
      tarSize: tar.size,
      size: extractor.size,
      entries: extractor.entries,
    };
  } catch (err) {
    if (signal?.aborted && !(err instanceof AbortedError)) throw new AbortedError();
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * How much tar is written out between two turns of the event loop (see
 * unpackLayer): less than gunzip inflates per threadpool round trip.
 */
const SLICE = 64 << 10;

/** Counts bytes as a {@link Digester} does, without hashing them. */
class Counter {
  size = 0;
  update(chunk: Uint8Array): void {
    this.size += chunk.byteLength;
  }
}

/** A cleaned entry name: components without `.`, `..` or empty ones; `''` is the layer root. */
function cleanName(raw: string, entry: string, what = 'name'): string {
  if (raw.includes('\0')) throw new UnsafeLayerError(entry, `NUL byte in ${what}`);
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') throw new UnsafeLayerError(entry, `'..' in ${what} ${JSON.stringify(raw)}`);
    parts.push(part);
  }
  return parts.join('/');
}

function lstatOrNull(path: string): Stats | null {
  // Without an exception for the common "not there": building one costs more than the call.
  return lstatSync(path, { throwIfNoEntry: false }) ?? null;
}

function isEexist(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'EEXIST';
}

/**
 * Writes entries into one layer directory, as the {@link TarParser}'s sink:
 * every call is synchronous, a regular file is open from its `entry` to its
 * `entryEnd`.
 */
class Extractor implements TarSink {
  /** Relative paths known to be real directories (made or verified by us). */
  private readonly dirs = new Set<string>(['']);
  /** Directory times, set last: creating children changes a directory's mtime. */
  private readonly dirTimes: Array<[string, number, number]> = [];
  /** The regular file being written, from its `entry` to its `entryEnd`. */
  private file: { fd: number; path: string; header: TarHeader; atime: number; mtime: number } | null = null;
  /** Bytes of regular file content written. */
  size = 0;
  /** Tar entries seen. */
  entries = 0;

  constructor(
    private readonly root: string,
    private readonly ops: FsOps,
  ) {}

  private abs(rel: string): string {
    // rel is clean (no empty, '.' or '..' components): no normalizing needed.
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }

  /**
   * Makes sure every parent of `rel` is a real directory, creating missing ones
   * (0755, root-owned, as Docker does). A symlink or other non-directory on the
   * way is refused: following it could leave the layer.
   */
  private ensureParents(rel: string, entry: string): void {
    let cur = '';
    const parts = rel.split('/');
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur ? `${cur}/${parts[i]}` : parts[i]!;
      if (this.dirs.has(cur)) continue;
      const path = this.abs(cur);
      const st = lstatOrNull(path);
      if (st === null) {
        mkdirSync(path, 0o755);
        chmodSync(path, 0o755); // the umask may have taken bits away
      } else if (!st.isDirectory()) {
        const kind = st.isSymbolicLink() ? 'a symlink' : 'not a directory';
        throw new UnsafeLayerError(entry, `parent ${JSON.stringify(cur)} is ${kind}`);
      }
      this.dirs.add(cur);
    }
  }

  /** Like {@link ensureParents} but creates nothing: for paths that must already be in the layer. */
  private checkParents(rel: string, entry: string): void {
    let cur = '';
    const parts = rel.split('/');
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur ? `${cur}/${parts[i]}` : parts[i]!;
      if (this.dirs.has(cur)) continue;
      const st = lstatOrNull(this.abs(cur));
      if (st === null) throw new UnsafeLayerError(entry, `hard link target's parent ${JSON.stringify(cur)} is not in the layer`);
      if (!st.isDirectory()) {
        throw new UnsafeLayerError(entry, `hard link target's parent ${JSON.stringify(cur)} is ${st.isSymbolicLink() ? 'a symlink' : 'not a directory'}`);
      }
      this.dirs.add(cur);
    }
  }

  /** Removes whatever is at `rel` (a later entry replaces an earlier one), forgetting directories under it. */
  private replace(rel: string): void {
    rmSync(this.abs(rel), { recursive: true, force: true });
    for (const d of this.dirs) if (d === rel || d.startsWith(`${rel}/`)) this.dirs.delete(d);
  }

  /**
   * Runs `make`, which creates `rel` with Node's fs and fails with EEXIST
   * when something is there already; that is then removed (a later entry
   * replaces an earlier one) and `make` runs again. Nothing is looked up
   * first: the common case (nothing there) costs the one call.
   */
  private create<T>(rel: string, make: () => T): T {
    try {
      return make();
    } catch (err) {
      if (!isEexist(err)) throw err;
    }
    this.replace(rel);
    return make();
  }

  entry(h: TarHeader): void {
    this.entries++;
    const entry = h.name;
    const rel = cleanName(h.name, entry);
    const parts = rel.split('/');
    const base = parts[parts.length - 1]!;

    // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs, and anything below them) has no overlay meaning.
    if (parts.some((p) => p.startsWith(WHITEOUT_META_PREFIX) && p !== WHITEOUT_OPAQUE)) return;
    if (rel === '') {
      // The layer root keeps the mode the store gave it, as Docker does for ".".
      if (h.type !== 'directory') throw new UnsafeLayerError(entry, 'the layer root is not a directory');
      return;
    }

    if (base === WHITEOUT_OPAQUE) {
      if (h.type === 'directory') throw new UnsafeLayerError(entry, 'an opaque whiteout must not be a directory');
      this.ensureParents(rel, entry);
      this.ops.lsetxattr(this.abs(parts.slice(0, -1).join('/')), OVERLAY_OPAQUE_XATTR, Buffer.from('y'));
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      const name = base.slice(WHITEOUT_PREFIX.length);
      if (name === '' || name === '.' || name === '..') throw new UnsafeLayerError(entry, 'whiteout of an invalid name');
      if (h.type === 'directory') throw new UnsafeLayerError(entry, 'a whiteout must not be a directory');
      const target = [...parts.slice(0, -1), name].join('/');
      this.ensureParents(target, entry);
      const path = this.abs(target);
      // Looked up first: the portable mknod's failure does not say EEXIST.
      if (lstatOrNull(path)) this.replace(target);
      this.ops.mknod(path, constants.S_IFCHR, 0, 0);
      this.ops.lchown(path, h.uid, h.gid);
      return;
    }

    this.ensureParents(rel, entry);
    const path = this.abs(rel);
    const mtime = h.mtime;
    const atime = Math.max(h.atime ?? mtime, mtime);

    switch (h.type) {
      case 'directory': {
        // An existing directory stays (with its contents); anything else is replaced.
        this.create(rel, () => {
          try {
            mkdirSync(path, 0o700);
          } catch (err) {
            if (!isEexist(err) || !lstatOrNull(path)?.isDirectory()) throw err;
          }
        });
        this.dirs.add(rel);
        this.ops.lchown(path, h.uid, h.gid);
        chmodSync(path, h.mode); // after chown, which clears setgid
        this.setXattrs(path, h, entry);
        this.dirTimes.push([path, atime, mtime]);
        return;
      }

      case 'file': {
        // O_EXCL|O_NOFOLLOW: never through a symlink someone put there.
        const fd = this.create(rel, () => openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
        this.file = { fd, path, header: h, atime, mtime };
        return;
      }

      case 'symlink':
        // Stored as-is; the target is never resolved while extracting.
        this.create(rel, () => symlinkSync(h.linkname, path));
        this.ops.lchown(path, h.uid, h.gid);
        this.setXattrs(path, h, entry);
        this.ops.lutimes(path, atime, mtime);
        return;

      case 'link': {
        // Replaced first: a link to the very name it replaces has no target left.
        if (lstatOrNull(path)) this.replace(rel);
        const target = cleanName(h.linkname, entry, 'hard link target');
        if (target === '') throw new UnsafeLayerError(entry, 'hard link to the layer root');
        this.checkParents(target, entry);
        const st = lstatOrNull(this.abs(target));
        if (st === null) throw new UnsafeLayerError(entry, `hard link target ${JSON.stringify(h.linkname)} is not in the layer`);
        if (st.isDirectory()) throw new UnsafeLayerError(entry, 'hard link to a directory');
        // link(2) on Linux links a symlink itself, never what it points to.
        linkSync(this.abs(target), path);
        return;
      }

      case 'char':
      case 'block':
      case 'fifo': {
        const type = h.type === 'char' ? constants.S_IFCHR : h.type === 'block' ? constants.S_IFBLK : constants.S_IFIFO;
        if (lstatOrNull(path)) this.replace(rel); // as for whiteouts
        this.ops.mknod(path, type | (h.mode & 0o777), h.devmajor, h.devminor);
        this.ops.lchown(path, h.uid, h.gid);
        chmodSync(path, h.mode); // not a symlink: we just made it
        this.setXattrs(path, h, entry);
        this.ops.lutimes(path, atime, mtime);
        return;
      }
    }
  }

  data(chunk: Buffer): void {
    const file = this.file;
    if (!file) return; // the body of an entry that is not written (an AUFS file, a whiteout)
    for (let off = 0; off < chunk.length; ) off += writeSync(file.fd, chunk, off, chunk.length - off);
    this.size += chunk.length;
  }

  entryEnd(): void {
    const file = this.file;
    if (!file) return;
    this.file = null;
    const { fd, header: h } = file;
    try {
      fchownSync(fd, h.uid, h.gid);
      fchmodSync(fd, h.mode); // after chown, which clears setuid/setgid
      futimesSync(fd, file.atime, file.mtime);
    } finally {
      closeSync(fd);
    }
    this.setXattrs(file.path, h, h.name); // after chown and the content, which both clear security.capability
  }

  /** Closes the file being written, if any (the extraction failed half-way). */
  close(): void {
    if (this.file) closeSync(this.file.fd);
    this.file = null;
  }

  private setXattrs(path: string, h: TarHeader, entry: string): void {
    for (const [name, value] of h.xattrs) {
      // Overlay's own attributes (redirect, metacopy, opaque...) steer how layers merge;
      // only whiteout conversion may set them.
      if (name.startsWith('trusted.overlay.')) {
        log('%s: ignoring xattr %s', entry, name);
        continue;
      }
      try {
        this.ops.lsetxattr(path, name, value);
      } catch (err) {
        const code = errnoCode(err);
        // As Docker: a file system without xattr support (or a refused namespace) is not fatal.
        if (code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EPERM') {
          log('%s: xattr %s not set: %s', entry, name, code);
          continue;
        }
        throw err;
      }
    }
  }

  /** Applies directory times, in archive order so a directory listed twice gets its last times. */
  finish(): void {
    for (const [path, atime, mtime] of this.dirTimes) this.ops.lutimes(path, atime, mtime);
  }
}
