/*
 * The child's filesystem setup: the overlay root, the rootfs ops (every
 * path resolved inside the new root with openat2(RESOLVE_IN_ROOT), never
 * following a symlink out of it) and pivot_root. Child side: raw system
 * calls only; every function returns 0 or a negative errno.
 */
#ifndef DOCKLESS_MOUNTS_H
#define DOCKLESS_MOUNTS_H

#include "plan.h"

/* Makes every mount of the new mount namespace private (no propagation to the host). */
long dl_mount_private (void);

/* Mounts the overlay on plan->target; *rootfd is an O_PATH fd of its root. */
long dl_mount_rootfs (const struct dl_plan *plan, int *rootfd);

/* Runs one op inside the root. */
long dl_run_op (int rootfd, const struct dl_op *op);

/* Remounts the root read-only (after the ops, which may create mount points). */
long dl_remount_readonly (int rootfd);

/* pivot_root into rootfd and detach the old root. */
long dl_pivot_root (int rootfd);

#endif
