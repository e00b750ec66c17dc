#include "mounts.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "child.h"

/* Flags a read-only or bind remount must carry over, else they would be cleared. */
#define PRESERVED_FLAGS (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME)
#define BIND_ATTR_FLAGS                                                                            \
  (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME         \
   | MS_STRICTATIME | 256 /* MS_NOSYMFOLLOW */)
#define PROPAGATION_FLAGS (MS_PRIVATE | MS_SLAVE | MS_SHARED | MS_UNBINDABLE)

static void
xclose (long fd)
{
  if (fd >= 0)
    dl_sys (SYS_close, fd);
}

/* Resolves path inside the root: absolute symlinks and ".." stay inside it,
   and /proc magic links are refused. */
static long
open_in_root (int rootfd, const char *path, uint64_t flags, uint64_t mode)
{
  struct dl_open_how how = {
    .flags = flags | O_CLOEXEC,
    .mode = mode,
    .resolve = DL_RESOLVE_IN_ROOT | DL_RESOLVE_NO_MAGICLINKS,
  };
  return dl_sys (SYS_openat2, rootfd, path, &how, sizeof (how));
}

static size_t
child_strlen (const char *s)
{
  size_t n = 0;
  while (s[n])
    n++;
  return n;
}

/* "/a/b/c" -> dir "/a/b" (in buf, DL_MAX_PATH bytes) and returns "c". */
static const char *
split_path (const char *path, char *buf)
{
  size_t last = 0;
  for (size_t i = 0; path[i]; i++)
    if (path[i] == '/')
      last = i;
  if (last == 0)
    {
      buf[0] = '/';
      buf[1] = '\0';
    }
  else
    {
      for (size_t i = 0; i < last; i++)
        buf[i] = path[i];
      buf[last] = '\0';
    }
  return path + last + 1;
}

/* Opens the directory `path` inside the root as O_PATH, creating missing
   components one by one with mkdirat in their (already resolved) parent, so
   that nothing is created outside the root. New directories get `mode` and,
   with chown_new, uid:gid. */
static long
mkdir_p (int rootfd, const char *path, uint32_t mode, uint32_t uid, uint32_t gid, bool chown_new)
{
  long fd = open_in_root (rootfd, path, O_PATH | O_DIRECTORY, 0);
  if (fd != -ENOENT)
    return fd;

  char buf[DL_MAX_PATH];
  size_t len = child_strlen (path);
  if (len >= sizeof (buf))
    return -ENAMETOOLONG;
  for (size_t i = 0; i <= len; i++)
    buf[i] = path[i];

  long parent = rootfd;
  size_t i = 1;
  while (i <= len)
    {
      size_t start = i;
      while (i < len && buf[i] != '/')
        i++;
      char saved = buf[i];
      buf[i] = '\0';
      long next = open_in_root (rootfd, buf, O_PATH | O_DIRECTORY, 0);
      if (next == -ENOENT)
        {
          long r = dl_sys (SYS_mkdirat, parent, buf + start, mode);
          if (r == 0 && chown_new)
            r = dl_sys (SYS_fchownat, parent, buf + start, uid, gid, AT_SYMLINK_NOFOLLOW);
          if (r < 0 && r != -EEXIST)
            {
              if (parent != rootfd)
                xclose (parent);
              return r;
            }
          /* O_NOFOLLOW|O_DIRECTORY: an existing dangling symlink fails here. */
          next = dl_sys (SYS_openat, parent, buf + start, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
      if (parent != rootfd)
        xclose (parent);
      if (next < 0)
        return next;
      parent = next;
      buf[i] = saved;
      i++;
    }
  return parent;
}

static long
mkdir_parent (int rootfd, const char *target, const char **name)
{
  char dir[DL_MAX_PATH];
  *name = split_path (target, dir);
  return mkdir_p (rootfd, dir, 0755, 0, 0, false);
}

static long
preserved_flags (long fd, unsigned long *flags)
{
  struct statfs st;
  long r = dl_sys (SYS_fstatfs, fd, &st);
  if (r < 0)
    return r;
  /* ST_* flags have the same values as the MS_* ones. */
  *flags = (unsigned long) st.f_flags & PRESERVED_FLAGS;
  return 0;
}

/* Remounts the mount at `target` (reopened, so that it is the new mount's
   root) with a propagation type and per-mount flags. */
static long
set_mount_flags (int rootfd, const char *target, unsigned long propagation, unsigned long attrs)
{
  char path[32];
  long fd = open_in_root (rootfd, target, O_PATH, 0);
  if (fd < 0)
    return fd;
  long r = 0;
  if (propagation)
    r = dl_sys (SYS_mount, 0, dl_fd_path (path, (int) fd), 0, propagation, 0);
  if (r == 0 && attrs)
    {
      unsigned long keep;
      r = preserved_flags (fd, &keep);
      if (r == 0)
        r = dl_sys (SYS_mount, 0, dl_fd_path (path, (int) fd), 0, MS_REMOUNT | MS_BIND | attrs | keep, 0);
    }
  xclose (fd);
  return r;
}

static long
op_mount (int rootfd, const struct dl_op *op)
{
  char path[32];
  long fd = mkdir_p (rootfd, op->target, 0755, 0, 0, false);
  if (fd < 0)
    return fd;
  long r = dl_sys (SYS_mount, op->source, dl_fd_path (path, (int) fd), op->fstype, op->flags,
                   op->data[0] ? op->data : 0);
  xclose (fd);
  return r;
}

static long
op_bind (int rootfd, const struct dl_op *op)
{
  char path[32], src[32];
  long tfd = open_in_root (rootfd, op->target, O_PATH, 0);
  if (tfd == -ENOENT && op->src_is_dir)
    tfd = mkdir_p (rootfd, op->target, 0755, 0, 0, false);
  else if (tfd == -ENOENT)
    {
      const char *name;
      long pfd = mkdir_parent (rootfd, op->target, &name);
      if (pfd < 0)
        return pfd;
      long f = dl_sys (SYS_openat, pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
      xclose (pfd);
      if (f < 0 && f != -EEXIST)
        return f;
      xclose (f);
      tfd = open_in_root (rootfd, op->target, O_PATH, 0);
    }
  if (tfd < 0)
    return tfd;

  long r;
  if (op->src_is_tree)
    r = dl_sys (SYS_move_mount, op->src_fd, "", tfd, "", DL_MOVE_MOUNT_F_EMPTY_PATH | DL_MOVE_MOUNT_T_EMPTY_PATH);
  else
    r = dl_sys (SYS_mount, dl_fd_path (src, op->src_fd), dl_fd_path (path, (int) tfd), 0,
                MS_BIND | (op->flags & MS_REC), 0);
  xclose (tfd);
  if (r < 0)
    return r;

  /* The copy of a shared host mount would still be in the host's peer
     group: private unless asked otherwise, so nothing propagates back. */
  unsigned long propagation = op->flags & PROPAGATION_FLAGS;
  if (propagation == 0)
    propagation = MS_PRIVATE;
  return set_mount_flags (rootfd, op->target, propagation | (op->flags & MS_REC), op->flags & BIND_ATTR_FLAGS);
}

static long
op_mknod (int rootfd, const struct dl_op *op)
{
  const char *name;
  long pfd = mkdir_parent (rootfd, op->target, &name);
  if (pfd < 0)
    return pfd;
  long r = dl_sys (SYS_mknodat, pfd, name, S_IFCHR | op->mode, op->dev);
  if (r == 0)
    r = dl_sys (SYS_fchownat, pfd, name, op->uid, op->gid, AT_SYMLINK_NOFOLLOW);
  else if (r == -EEXIST)
    r = 0;
  xclose (pfd);
  return r;
}

static long
op_symlink (int rootfd, const struct dl_op *op)
{
  const char *name;
  long pfd = mkdir_parent (rootfd, op->target, &name);
  if (pfd < 0)
    return pfd;
  long r = dl_sys (SYS_symlinkat, op->link_to, pfd, name);
  xclose (pfd);
  return r == -EEXIST ? 0 : r;
}

static long
op_mask (int rootfd, const struct dl_op *op)
{
  char path[32];
  struct stat st;
  long fd = open_in_root (rootfd, op->target, O_PATH, 0);
  if (fd == -ENOENT)
    return 0;
  if (fd < 0)
    return fd;
  long r = dl_sys (SYS_newfstatat, fd, "", &st, AT_EMPTY_PATH);
  if (r == 0 && S_ISDIR (st.st_mode))
    r = dl_sys (SYS_mount, "tmpfs", dl_fd_path (path, (int) fd), "tmpfs", MS_RDONLY, 0);
  else if (r == 0)
    /* The host's /dev/null: the child still sees the host tree until pivot_root. */
    r = dl_sys (SYS_mount, "/dev/null", dl_fd_path (path, (int) fd), 0, MS_BIND, 0);
  xclose (fd);
  return r;
}

static long
op_readonly (int rootfd, const struct dl_op *op)
{
  char path[32];
  long fd = open_in_root (rootfd, op->target, O_PATH, 0);
  if (fd == -ENOENT)
    return 0;
  if (fd < 0)
    return fd;
  long r = dl_sys (SYS_mount, dl_fd_path (path, (int) fd), path, 0, MS_BIND | MS_REC, 0);
  xclose (fd);
  if (r < 0)
    return r;
  return set_mount_flags (rootfd, op->target, 0, MS_RDONLY);
}

static long
op_write (int rootfd, const struct dl_op *op)
{
  const char *name;
  long pfd = mkdir_parent (rootfd, op->target, &name);
  if (pfd < 0)
    return pfd;
  xclose (pfd);
  long fd = open_in_root (rootfd, op->target, O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY, 0644);
  if (fd < 0)
    return fd;
  size_t done = 0;
  long r = 0;
  while (done < op->data_len)
    {
      r = dl_sys (SYS_write, fd, op->data + done, op->data_len - done);
      if (r == -EINTR)
        continue;
      if (r <= 0)
        break;
      done += (size_t) r;
      r = 0;
    }
  xclose (fd);
  return r < 0 ? r : (done == op->data_len ? 0 : -EIO);
}

long
dl_run_op (int rootfd, const struct dl_op *op)
{
  switch (op->kind)
    {
    case DL_OP_MOUNT:
      return op_mount (rootfd, op);
    case DL_OP_BIND:
      return op_bind (rootfd, op);
    case DL_OP_MKNOD:
      return op_mknod (rootfd, op);
    case DL_OP_SYMLINK:
      return op_symlink (rootfd, op);
    case DL_OP_MKDIRP:
      {
        long fd = mkdir_p (rootfd, op->target, op->mode, op->uid, op->gid, true);
        xclose (fd);
        return fd < 0 ? fd : 0;
      }
    case DL_OP_MASK:
      return op_mask (rootfd, op);
    case DL_OP_READONLY:
      return op_readonly (rootfd, op);
    case DL_OP_WRITE:
      return op_write (rootfd, op);
    }
  return -EINVAL;
}

long
dl_mount_private (void)
{
  return dl_sys (SYS_mount, "", "/", 0, MS_REC | MS_PRIVATE, 0);
}

/* The new mount API: one fsconfig("lowerdir+") per layer, so that many
   layers do not run into mount(2)'s one-page option limit. Returns 1 when
   this kernel cannot do it (no fsopen, no "lowerdir+" before Linux 6.8, or
   a path longer than fsconfig's 256 bytes): then mount(2) is used. */
static long
overlay_new_api (const struct dl_plan *plan, int *rootfd)
{
  long fs = dl_sys (SYS_fsopen, "overlay", DL_FSOPEN_CLOEXEC);
  if (fs == -ENOSYS)
    return 1;
  if (fs < 0)
    return fs;
  long r = dl_sys (SYS_fsconfig, fs, DL_FSCONFIG_SET_STRING, "source", "overlay", 0);
  if (r == 0)
    r = dl_sys (SYS_fsconfig, fs, DL_FSCONFIG_SET_STRING, "index", "off", 0);
  if (r == 0 && plan->overlay_volatile)
    r = dl_sys (SYS_fsconfig, fs, DL_FSCONFIG_SET_FLAG, "volatile", 0, 0);
  for (size_t i = 0; r == 0 && i < plan->n_lower; i++)
    r = dl_sys (SYS_fsconfig, fs, DL_FSCONFIG_SET_STRING, "lowerdir+", plan->lower[i], 0);
  if (r == 0)
    r = dl_sys (SYS_fsconfig, fs, DL_FSCONFIG_SET_STRING, "upperdir", plan->upper, 0);
  if (r == 0)
    r = dl_sys (SYS_fsconfig, fs, DL_FSCONFIG_SET_STRING, "workdir", plan->work, 0);
  if (r == -EINVAL)
    {
      xclose (fs);
      return 1;
    }
  if (r == 0)
    r = dl_sys (SYS_fsconfig, fs, DL_FSCONFIG_CMD_CREATE, 0, 0, 0);
  long m = r < 0 ? r : dl_sys (SYS_fsmount, fs, DL_FSMOUNT_CLOEXEC, 0);
  xclose (fs);
  if (m < 0)
    return m;
  r = dl_sys (SYS_move_mount, m, "", AT_FDCWD, plan->target, DL_MOVE_MOUNT_F_EMPTY_PATH);
  if (r < 0)
    {
      xclose (m);
      return r;
    }
  *rootfd = (int) m;
  return 0;
}

long
dl_mount_rootfs (const struct dl_plan *plan, int *rootfd)
{
  long r = overlay_new_api (plan, rootfd);
  if (r <= 0)
    return r;
  if (plan->overlay_data == 0)
    return -E2BIG;
  r = dl_sys (SYS_mount, "overlay", plan->target, "overlay", 0, plan->overlay_data);
  if (r < 0)
    return r;
  long fd = dl_sys (SYS_openat, AT_FDCWD, plan->target, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return fd;
  *rootfd = (int) fd;
  return 0;
}

long
dl_remount_readonly (int rootfd)
{
  char path[32];
  unsigned long keep;
  long r = preserved_flags (rootfd, &keep);
  if (r < 0)
    return r;
  return dl_sys (SYS_mount, 0, dl_fd_path (path, rootfd), 0, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, 0);
}

long
dl_pivot_root (int rootfd)
{
  /* pivot_root(".", ".") stacks the old root on top of the new one; detaching
     it leaves the new root alone, with no directory needed for the old one. */
  long r = dl_sys (SYS_fchdir, rootfd);
  if (r == 0)
    r = dl_sys (SYS_pivot_root, ".", ".");
  if (r == 0)
    r = dl_sys (SYS_umount2, ".", MNT_DETACH);
  if (r == 0)
    r = dl_sys (SYS_chdir, "/");
  return r;
}
