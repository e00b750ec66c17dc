/**
 * The addon's mknod and xattr calls as {@link FsOps}: one system call per
 * whiteout, device or attribute, where the portable stand-ins spawn a
 * process each.
 * @internal
 * @module
 */

import { native } from '../isolation/native.js';
import type { FsOps } from './fsops.js';

/**
 * The store's file system calls Node lacks, from the addon (lchown and
 * lutimes come from Node).
 * @internal
 */
export const nativeFsOps: Partial<FsOps> = {
  mknod: (path, mode, major, minor) => native.mknod(path, mode, major, minor),
  lsetxattr: (path, name, value) => native.lsetxattr(path, name, value),
  lgetxattr: (path, name) => native.lgetxattr(path, name),
  llistxattr: (path) => native.llistxattr(path),
};
