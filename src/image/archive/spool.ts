/**
 * The files of an image archive, read once from its tar stream into a private
 * scratch directory, hashed on the way.
 *
 * Both archive formats may put their index (`manifest.json`, `index.json`)
 * after the layers, so the archive is read to its end before anything is
 * stored. Entry names are only ever looked up, never used as paths: every
 * regular file is written under a number, and symlinks and hard links (Docker
 * wrote repeated layers as `../<id>/layer.tar` symlinks) are followed by name
 * inside the archive, so nothing in an archive can point outside it.
 * @module
 */

import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join, posix } from 'node:path';
import { AbortedError, DigestMismatchError, DocklessError, InvalidArchiveError } from '../../errors.js';
import { decompress, detectCompression, peek } from '../compression.js';
import { Digester, type Sha256Digest } from '../digest.js';
import { readTar } from '../tar.js';

/** A regular file of the archive, stored in the scratch directory. */
export interface SpooledFile {
  /** Its name in the archive (normalized). */
  name: string;
  /** Where its bytes are now. */
  path: string;
  digest: Sha256Digest;
  size: number;
}

const MAX_LINK_HOPS = 16;
/** JSON documents (manifest.json, index.json, configs) larger than this are refused. */
export const MAX_DOCUMENT_SIZE = 16 * 1024 * 1024;

/**
 * An archive entry's name as a clean relative path (`./a//b` → `a/b`).
 * @throws {@link InvalidArchiveError} for a name that climbs out of the archive.
 */
export function archivePath(name: string, from = ''): string {
  if (name.includes('\0')) throw new InvalidArchiveError(`entry name ${JSON.stringify(name)} holds a NUL byte`);
  const parts: string[] = [];
  // An absolute name means the archive's root, as tar writers mean it.
  for (const part of [...(name.startsWith('/') ? [] : from.split('/')), ...name.split('/')]) {
    if (part === '' || part === '.') continue;
    if (part !== '..') parts.push(part);
    else if (parts.pop() === undefined) throw new InvalidArchiveError(`${JSON.stringify(name)} points outside the archive`);
  }
  return parts.join('/');
}

/** The regular files (and links to them) of an archive. */
export class ArchiveFiles {
  private readonly files = new Map<string, SpooledFile>();
  private readonly links = new Map<string, string>();

  private constructor(readonly dir: string) {}

  /**
   * Reads a whole archive (a tar, or a gzip or zstd compressed one, sniffed)
   * into `dir`, an empty private directory the caller removes afterwards.
   * @throws {@link InvalidArchiveError} when it is not a (well-formed) tar.
   */
  static async read(source: AsyncIterable<Uint8Array>, dir: string, signal?: AbortSignal): Promise<ArchiveFiles> {
    const archive = new ArchiveFiles(dir);
    let count = 0;
    try {
      const { head, stream } = await peek(source, 4);
      if (head.length === 0) throw new InvalidArchiveError('the archive is empty');
      for await (const { header, body } of readTar(decompress(stream, detectCompression(head)))) {
        if (signal?.aborted) throw new AbortedError();
        const name = archivePath(header.name);
        if (name === '') continue;
        if (header.type === 'file') {
          archive.links.delete(name);
          archive.files.set(name, await spool(body, join(dir, String(count++)), name, signal));
        } else if (header.type === 'symlink') {
          archive.files.delete(name);
          archive.links.set(name, archivePath(header.linkname, posix.dirname(name)));
        } else if (header.type === 'link') {
          archive.files.delete(name);
          archive.links.set(name, archivePath(header.linkname));
        }
        // Directories carry nothing; devices and fifos have no place in an image archive.
      }
    } catch (err) {
      if (err instanceof AbortedError || signal?.aborted) throw new AbortedError();
      if (err instanceof InvalidArchiveError) throw err;
      // A failing write (ENOSPC) is ours, not the archive's.
      if ((err as NodeJS.ErrnoException).syscall !== undefined) throw err;
      if (err instanceof DocklessError && err.code !== 'ERR_INVALID_TAR' && err.code !== 'ERR_DECOMPRESS') throw err;
      // A malformed tar, a broken gzip stream: the input is not an archive we can read.
      const message = err instanceof Error ? err.message : String(err);
      throw new InvalidArchiveError(`not a readable tar archive: ${message}`, { cause: err });
    }
    return archive;
  }

  /** True when the archive has a file (or a link to one) by this name. */
  has(name: string): boolean {
    const n = archivePath(name);
    return this.files.has(n) || this.links.has(n);
  }

  /**
   * The file named `name`, following links inside the archive. A file named
   * `blobs/sha256/<hex>` (OCI layout) must hash to that digest.
   * @param what says what the file is, for error messages.
   * @throws {@link InvalidArchiveError} when it is missing or points outside
   *   the archive; {@link DigestMismatchError}.
   */
  get(name: string, what: string): SpooledFile {
    let n = archivePath(name);
    for (let hops = 0; ; hops++) {
      const file = this.files.get(n);
      if (file) {
        const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(n);
        if (m && file.digest !== `sha256:${m[1]}`) throw new DigestMismatchError(`sha256:${m[1]}`, file.digest);
        return file;
      }
      const target = this.links.get(n);
      if (target === undefined) throw new InvalidArchiveError(`${what} ${JSON.stringify(name)} is not in the archive`);
      if (hops >= MAX_LINK_HOPS) throw new InvalidArchiveError(`${what} ${JSON.stringify(name)}: too many levels of links`);
      n = target;
    }
  }

  /** The bytes of a small file (a JSON document). @throws {@link InvalidArchiveError} when missing or too large. */
  read(name: string, what: string): Buffer {
    const file = this.get(name, what);
    if (file.size > MAX_DOCUMENT_SIZE) throw new InvalidArchiveError(`${what} ${JSON.stringify(name)} is ${file.size} bytes, more than ${MAX_DOCUMENT_SIZE}`);
    return readFileSync(file.path);
  }

  /** A small file parsed as JSON. @throws {@link InvalidArchiveError} */
  readJson(name: string, what: string): unknown {
    const bytes = this.read(name, what);
    try {
      return JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      throw new InvalidArchiveError(`${what} ${JSON.stringify(name)} is not JSON: ${(err as Error).message}`);
    }
  }
}

async function spool(body: AsyncIterable<Buffer>, path: string, name: string, signal?: AbortSignal): Promise<SpooledFile> {
  const digester = new Digester();
  const fd = openSync(path, 'wx', 0o600);
  try {
    for await (const chunk of body) {
      if (signal?.aborted) throw new AbortedError();
      digester.update(chunk);
      for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
    }
  } finally {
    closeSync(fd);
  }
  return { name, path, digest: digester.digest(), size: digester.size };
}
