/**
 * The file system calls layer unpacking and directory import need beyond what
 * Node offers: mknod (device nodes, fifos, overlay whiteouts) and extended
 * attributes (overlay's opaque marker, `security.capability`, ACLs).
 *
 * NATIVE: Node has neither mknod(2) nor the *xattr(2) calls. The engine passes
 * the addon's implementations (native/fsops.c, through native-fsops.ts) in
 * through {@link ImageStoreOptions.fsops}. A store opened without them falls
 * back to {@link portableFsOps}, which runs the coreutils `mknod` binary and,
 * when the `attr` package is installed, the `setfattr`/`getfattr` binaries:
 * slow (a process per call), but it needs no addon. The functions marked
 * NATIVE below are the ones the addon exports with exactly these signatures.
 * @module
 */

import { execFileSync } from 'node:child_process';
import { accessSync, constants, lchownSync, lutimesSync } from 'node:fs';
import createDebug from 'debug';
import { SystemError, UnsupportedError } from '../errors.js';

const log = createDebug('dockless:image');

/**
 * File system operations used to unpack layers and import directories. All are
 * synchronous, path based, and must not follow a symlink in the last component.
 * Failures throw an error carrying the errno: a {@link SystemError} (native) or a
 * Node `ErrnoException` (`code: 'EPERM'` …).
 */
export interface FsOps {
  /**
   * NATIVE `mknod(path, mode, makedev(major, minor))`. `mode` holds the file
   * type (`S_IFCHR`, `S_IFBLK` or `S_IFIFO`) and the permission bits; the umask
   * must not apply (the addon calls fchmodat after, or clears the umask).
   */
  mknod(path: string, mode: number, major: number, minor: number): void;
  /** NATIVE `lsetxattr(path, name, value, size, 0)`. */
  lsetxattr(path: string, name: string, value: Uint8Array): void;
  /** NATIVE `llistxattr(path)`: the attribute names, in the order the kernel lists them. */
  llistxattr(path: string): string[];
  /** NATIVE `lgetxattr(path, name)`: the attribute's value. */
  lgetxattr(path: string, name: string): Buffer;
  /** `lchown(path, uid, gid)` (Node has it). */
  lchown(path: string, uid: number, gid: number): void;
  /** `utimensat(AT_FDCWD, path, {atime, mtime}, AT_SYMLINK_NOFOLLOW)`, times in seconds (fractions kept). Node has it. */
  lutimes(path: string, atime: number, mtime: number): void;
}

function binaryAvailable(name: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((dir) => {
    try {
      accessSync(`${dir}/${name}`, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

let attrTools: boolean | undefined;
function hasAttrTools(): boolean {
  attrTools ??= binaryAvailable('setfattr') && binaryAvailable('getfattr');
  return attrTools;
}

function run(file: string, args: string[], syscall: string): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; code?: string };
    if (e.code === 'ENOENT') throw new UnsupportedError(`${syscall} needs the native addon (or the ${file} binary)`);
    const stderr = String(e.stderr ?? '').trim();
    // Keep the errno visible to callers that tolerate some failures (ENOTSUP on xattrs).
    const errno = /Operation not supported/.test(stderr) ? 95 : /Operation not permitted/.test(stderr) ? 1 : 5;
    throw new SystemError(syscall, errno, stderr);
  }
}

/**
 * Stand-in {@link FsOps} built from Node and system binaries (see the module
 * comment). `llistxattr` returns no names when `getfattr` is missing, so a
 * directory import then drops extended attributes (logged under `dockless:image`).
 */
export const portableFsOps: FsOps = {
  mknod(path, mode, major, minor) {
    const type = mode & constants.S_IFMT;
    const kind = type === constants.S_IFCHR ? 'c' : type === constants.S_IFBLK ? 'b' : type === constants.S_IFIFO ? 'p' : '';
    if (!kind) throw new SystemError('mknod', 22, `unsupported file type 0o${type.toString(8)}`);
    const args = ['-m', (mode & 0o7777).toString(8), '--', path, kind];
    if (kind !== 'p') args.push(String(major), String(minor));
    run('mknod', args, 'mknod');
  },
  lsetxattr(path, name, value) {
    if (!hasAttrTools()) throw new UnsupportedError(`setting extended attribute ${name} needs the native addon's lsetxattr`);
    const hex = Buffer.from(value).toString('hex');
    run('setfattr', ['-h', '-n', name, '-v', hex ? `0x${hex}` : '""', '--', path], 'lsetxattr');
  },
  llistxattr(path) {
    if (!hasAttrTools()) {
      log('no native llistxattr and no getfattr: extended attributes of %s are not read', path);
      return [];
    }
    const out = run('getfattr', ['-h', '-m', '-', '--absolute-names', '--', path], 'llistxattr');
    return out.split('\n').filter((l) => l && !l.startsWith('#'));
  },
  lgetxattr(path, name) {
    if (!hasAttrTools()) throw new UnsupportedError(`reading extended attribute ${name} needs the native addon's lgetxattr`);
    const out = run('getfattr', ['-h', '-n', name, '-e', 'hex', '--absolute-names', '--', path], 'lgetxattr');
    const line = out.split('\n').find((l) => l.startsWith(`${name}=`));
    const value = line?.slice(name.length + 1) ?? '';
    return value.startsWith('0x') ? Buffer.from(value.slice(2), 'hex') : Buffer.from(value.replace(/^"|"$/g, ''));
  },
  lchown: lchownSync,
  lutimes: lutimesSync,
};

/** `ops` completed with {@link portableFsOps} for whatever it leaves out. */
export function resolveFsOps(ops?: Partial<FsOps>): FsOps {
  return ops ? { ...portableFsOps, ...ops } : portableFsOps;
}

/** The errno name carried by an error from an {@link FsOps} call or from Node's fs (`EPERM`, `ENOTSUP` …). */
export function errnoCode(err: unknown): string | undefined {
  const e = err as { errnoName?: string; code?: string };
  return e?.errnoName ?? e?.code;
}

/**
 * All extended attributes under `root`, read with one `getfattr -R` run: the
 * stand-in's way to avoid a process per file when importing a directory.
 * Returns undefined when `getfattr` is not installed.
 * @internal
 */
export function dumpXattrsWithGetfattr(root: string): Map<string, Map<string, Buffer>> | undefined {
  if (!hasAttrTools()) return undefined;
  let out: string;
  try {
    out = execFileSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', root], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 1 << 30,
    });
  } catch (err) {
    throw new SystemError('llistxattr', 5, String((err as { stderr?: string }).stderr ?? err).trim());
  }
  const all = new Map<string, Map<string, Buffer>>();
  let current: Map<string, Buffer> | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) {
      // getfattr escapes unusual bytes in names as \ooo.
      const path = Buffer.from(
        line.slice(8).replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))),
        'latin1',
      ).toString('utf8');
      current = new Map();
      all.set(path, current);
    } else if (current && line.includes('=')) {
      const eq = line.indexOf('=');
      const value = line.slice(eq + 1);
      current.set(
        line.slice(0, eq),
        value.startsWith('0x') ? Buffer.from(value.slice(2), 'hex') : Buffer.from(value.replace(/^"|"$/g, '')),
      );
    }
  }
  return all;
}
