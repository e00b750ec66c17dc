#include "misc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <termios.h>
#include <unistd.h>

#include "error.h"
#include "plan.h"
#include "syscalls.h"
#include "util.h"

/* An integer in [min, max], else a TypeError/RangeError naming it. */
static int
get_int (napi_env env, napi_value v, const char *name, int64_t min, int64_t max, int64_t *out)
{
  napi_valuetype t;
  double d;
  char msg[128];
  if (napi_typeof (env, v, &t) != napi_ok || t != napi_number || napi_get_value_double (env, v, &d) != napi_ok)
    {
      snprintf (msg, sizeof (msg), "%s must be a number", name);
      napi_throw_type_error (env, "ERR_INVALID_ARG_TYPE", msg);
      return -1;
    }
  if (!isfinite (d) || floor (d) != d || d < (double) min || d > (double) max)
    {
      snprintf (msg, sizeof (msg), "%s must be an integer between %lld and %lld", name, (long long) min,
                (long long) max);
      napi_throw_range_error (env, "ERR_OUT_OF_RANGE", msg);
      return -1;
    }
  *out = (int64_t) d;
  return 0;
}

static napi_value
make_int (napi_env env, int64_t v)
{
  napi_value r;
  return napi_create_int64 (env, v, &r) == napi_ok ? r : NULL;
}

napi_value
dl_napi_pipe (napi_env env, napi_callback_info info)
{
  int fds[2];
  napi_value arr;
  if (pipe2 (fds, O_CLOEXEC) < 0)
    return dl_throw_system (env, "pipe2", errno, NULL);
  if (napi_create_array_with_length (env, 2, &arr) != napi_ok
      || napi_set_element (env, arr, 0, make_int (env, fds[0])) != napi_ok
      || napi_set_element (env, arr, 1, make_int (env, fds[1])) != napi_ok)
    {
      close (fds[0]);
      close (fds[1]);
      return NULL;
    }
  return arr;
}

static int
get_winsize (napi_env env, napi_value rows, napi_value cols, struct winsize *ws)
{
  int64_t r, c;
  if (get_int (env, rows, "rows", 1, 65535, &r) < 0 || get_int (env, cols, "cols", 1, 65535, &c) < 0)
    return -1;
  memset (ws, 0, sizeof (*ws));
  ws->ws_row = (unsigned short) r;
  ws->ws_col = (unsigned short) c;
  return 0;
}

napi_value
dl_napi_openpty (napi_env env, napi_callback_info info)
{
  napi_value argv[2], result;
  struct winsize ws;
  char name[128];
  if (dl_get_args (env, info, 2, argv) < 0 || get_winsize (env, argv[0], argv[1], &ws) < 0)
    return NULL;
  _cleanup_close_ int master = posix_openpt (O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0)
    return dl_throw_system (env, "posix_openpt", errno, NULL);
  if (grantpt (master) < 0)
    return dl_throw_system (env, "grantpt", errno, NULL);
  if (unlockpt (master) < 0)
    return dl_throw_system (env, "unlockpt", errno, NULL);
  int e = ptsname_r (master, name, sizeof (name));
  if (e != 0)
    return dl_throw_system (env, "ptsname_r", e, NULL);
  _cleanup_close_ int slave = open (name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0)
    return dl_throw_system (env, "open", errno, name);
  if (ioctl (master, TIOCSWINSZ, &ws) < 0)
    return dl_throw_system (env, "ioctl", errno, "TIOCSWINSZ");
  if (napi_create_object (env, &result) != napi_ok
      || napi_set_named_property (env, result, "master", make_int (env, master)) != napi_ok
      || napi_set_named_property (env, result, "slave", make_int (env, slave)) != napi_ok)
    return NULL;
  master = slave = -1;
  return result;
}

/* A container console as runc makes one: a pty of a fresh devpts instance,
   so that inside the container the slave is /dev/pts/0 and ttyname() works.
   The instance is returned as a detached mount (fsmount) that the child
   attaches at /dev/pts with a `bind` op taking `sourceFd`. */
napi_value
dl_napi_open_console (napi_env env, napi_callback_info info)
{
  napi_value argv[2], result;
  struct winsize ws;
  int unlock = 0;
  if (dl_get_args (env, info, 2, argv) < 0 || get_winsize (env, argv[0], argv[1], &ws) < 0)
    return NULL;
  _cleanup_close_ int fs = (int) syscall (SYS_fsopen, "devpts", DL_FSOPEN_CLOEXEC);
  if (fs < 0)
    return dl_throw_system (env, "fsopen", errno, "devpts");
  if (syscall (SYS_fsconfig, fs, DL_FSCONFIG_SET_FLAG, "newinstance", NULL, 0) < 0
      || syscall (SYS_fsconfig, fs, DL_FSCONFIG_SET_STRING, "ptmxmode", "0666", 0) < 0
      || syscall (SYS_fsconfig, fs, DL_FSCONFIG_SET_STRING, "mode", "0620", 0) < 0
      || syscall (SYS_fsconfig, fs, DL_FSCONFIG_SET_STRING, "gid", "5", 0) < 0
      || syscall (SYS_fsconfig, fs, DL_FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
    return dl_throw_system (env, "fsconfig", errno, "devpts");
  _cleanup_close_ int mnt
      = (int) syscall (SYS_fsmount, fs, DL_FSMOUNT_CLOEXEC, DL_MOUNT_ATTR_NOSUID | DL_MOUNT_ATTR_NOEXEC);
  if (mnt < 0)
    return dl_throw_system (env, "fsmount", errno, "devpts");
  _cleanup_close_ int master = openat (mnt, "ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0)
    return dl_throw_system (env, "open", errno, "ptmx of the console devpts");
  if (ioctl (master, TIOCSPTLCK, &unlock) < 0)
    return dl_throw_system (env, "ioctl", errno, "TIOCSPTLCK");
  if (ioctl (master, TIOCSWINSZ, &ws) < 0)
    return dl_throw_system (env, "ioctl", errno, "TIOCSWINSZ");
  _cleanup_close_ int slave = ioctl (master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0)
    return dl_throw_system (env, "ioctl", errno, "TIOCGPTPEER");
  if (napi_create_object (env, &result) != napi_ok
      || napi_set_named_property (env, result, "mount", make_int (env, mnt)) != napi_ok
      || napi_set_named_property (env, result, "master", make_int (env, master)) != napi_ok
      || napi_set_named_property (env, result, "slave", make_int (env, slave)) != napi_ok)
    return NULL;
  mnt = master = slave = -1;
  return result;
}

napi_value
dl_napi_resize_pty (napi_env env, napi_callback_info info)
{
  napi_value argv[3];
  struct winsize ws;
  int64_t fd;
  if (dl_get_args (env, info, 3, argv) < 0 || get_int (env, argv[0], "fd", 0, INT_MAX, &fd) < 0
      || get_winsize (env, argv[1], argv[2], &ws) < 0)
    return NULL;
  if (ioctl ((int) fd, TIOCSWINSZ, &ws) < 0)
    return dl_throw_system (env, "ioctl", errno, "TIOCSWINSZ");
  return NULL;
}

napi_value
dl_napi_flock (napi_env env, napi_callback_info info)
{
  napi_value argv[3], result;
  int64_t fd;
  char op[16];
  size_t len;
  bool nonblock;
  napi_valuetype t;
  if (dl_get_args (env, info, 3, argv) < 0 || get_int (env, argv[0], "fd", 0, INT_MAX, &fd) < 0)
    return NULL;
  if (napi_typeof (env, argv[1], &t) != napi_ok || t != napi_string
      || napi_get_value_string_utf8 (env, argv[1], op, sizeof (op), &len) != napi_ok)
    {
      napi_throw_type_error (env, "ERR_INVALID_ARG_TYPE", "operation must be a string");
      return NULL;
    }
  int how;
  if (strcmp (op, "shared") == 0)
    how = LOCK_SH;
  else if (strcmp (op, "exclusive") == 0)
    how = LOCK_EX;
  else if (strcmp (op, "unlock") == 0)
    how = LOCK_UN;
  else
    {
      napi_throw_type_error (env, "ERR_INVALID_ARG_VALUE", "operation must be 'shared', 'exclusive' or 'unlock'");
      return NULL;
    }
  if (napi_typeof (env, argv[2], &t) != napi_ok || t != napi_boolean
      || napi_get_value_bool (env, argv[2], &nonblock) != napi_ok)
    {
      napi_throw_type_error (env, "ERR_INVALID_ARG_TYPE", "nonblock must be a boolean");
      return NULL;
    }
  int r;
  do
    r = flock ((int) fd, how | (nonblock ? LOCK_NB : 0));
  while (r < 0 && errno == EINTR);
  if (r < 0 && errno != EWOULDBLOCK)
    return dl_throw_system (env, "flock", errno, NULL);
  napi_get_boolean (env, r == 0, &result);
  return result;
}

napi_value
dl_napi_unmount (napi_env env, napi_callback_info info)
{
  napi_value argv[1];
  napi_valuetype t;
  char path[DL_MAX_PATH];
  size_t len;
  if (dl_get_args (env, info, 1, argv) < 0)
    return NULL;
  if (napi_typeof (env, argv[0], &t) != napi_ok || t != napi_string
      || napi_get_value_string_utf8 (env, argv[0], path, sizeof (path), &len) != napi_ok)
    {
      napi_throw_type_error (env, "ERR_INVALID_ARG_TYPE", "path must be a string");
      return NULL;
    }
  if (len >= sizeof (path) - 1 || strlen (path) != len || path[0] != '/')
    {
      napi_throw_type_error (env, "ERR_INVALID_ARG_VALUE", "path must be an absolute path shorter than 4096 bytes");
      return NULL;
    }
  if (umount2 (path, MNT_DETACH) < 0 && errno != ENOENT && errno != EINVAL)
    return dl_throw_system (env, "umount2", errno, path);
  return NULL;
}
