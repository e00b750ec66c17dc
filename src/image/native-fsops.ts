import type { FsOps } from './fsops.js';

/**
 * The addon's mknod and xattr calls for layer unpacking, when the addon has
 * them; otherwise the store falls back to its portable stand-ins.
 * @internal
 */
export const nativeFsOps: Partial<FsOps> = {};
