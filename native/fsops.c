/*
 * mknod and the l*xattr calls for layer unpacking and directory import
 * (FsOps in src/image/fsops.ts), so that a layer with whiteouts or extended
 * attributes does not cost a process per entry.
 *
 * TypeScript has checked the layer already (names cleaned, every parent a
 * real directory made by the extraction); these re-check types and bounds and
 * never follow a symlink in the last component: mknod cannot, the l* xattr
 * calls do not, and the chmod after mknod goes through the directory fd the
 * node was made in, with AT_SYMLINK_NOFOLLOW.
 */
#include "fsops.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "error.h"
#include "plan.h"
#include "util.h"

/* Linux's longest attribute name (XATTR_NAME_MAX of linux/limits.h). */
#define XATTR_NAME_MAX_LEN 255
/* The kernel's dev_t holds a 12-bit major and a 20-bit minor. */
#define DEV_MAJOR_MAX 0xfffu
#define DEV_MINOR_MAX 0xfffffu

/* A JS string into buf (size bytes). Too long is the kernel's ENAMETOOLONG
   (what the call would have said); NUL bytes or an empty string are refused:
   C would see another name than JS meant. */
static int
get_name (napi_env env, struct dl_error *err, napi_value v, const char *what, char *buf, size_t size,
          const char *syscall)
{
  napi_valuetype t;
  size_t len;
  if (napi_typeof (env, v, &t) != napi_ok || t != napi_string
      || napi_get_value_string_utf8 (env, v, NULL, 0, &len) != napi_ok)
    return dl_error_type (err, "%s must be a string", what);
  if (len == 0)
    return dl_error_value (err, "%s must not be empty", what);
  if (len >= size)
    return dl_error_system (err, ENAMETOOLONG, syscall, "%s of %zu bytes", what, len);
  if (napi_get_value_string_utf8 (env, v, buf, size, &len) != napi_ok)
    return dl_error_type (err, "%s must be a string", what);
  if (strlen (buf) != len)
    return dl_error_value (err, "%s must not contain NUL bytes", what);
  return 0;
}

static int
get_uint (napi_env env, struct dl_error *err, napi_value v, const char *what, uint32_t max, uint32_t *out)
{
  napi_valuetype t;
  double d;
  if (napi_typeof (env, v, &t) != napi_ok || t != napi_number || napi_get_value_double (env, v, &d) != napi_ok)
    return dl_error_type (err, "%s must be a number", what);
  if (!isfinite (d) || floor (d) != d || d < 0 || d > (double) max)
    return dl_error_range (err, "%s must be an integer between 0 and %u", what, max);
  *out = (uint32_t) d;
  return 0;
}

/* Splits path into its directory, opened O_PATH (AT_FDCWD for a bare name),
   and its last component, which must name something. */
static int
open_parent (struct dl_error *err, char *path, const char *syscall, const char **base)
{
  char *slash = strrchr (path, '/');
  if (slash == NULL)
    {
      *base = path;
      return AT_FDCWD;
    }
  if (slash[1] == '\0')
    return dl_error_system (err, EINVAL, syscall, "%s names a directory", path);
  *base = slash + 1;
  int fd;
  if (slash == path)
    fd = open ("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  else
    {
      *slash = '\0';
      fd = open (path, O_PATH | O_DIRECTORY | O_CLOEXEC);
      *slash = '/';
    }
  if (fd < 0)
    return dl_error_system (err, errno, syscall, "%s", path);
  return fd;
}

/* mknod(path, mode, major, minor): a character or block device or a fifo.
   The permission bits are set exactly (the umask does not apply). */
napi_value
dl_napi_mknod (napi_env env, napi_callback_info info)
{
  napi_value argv[4];
  struct dl_error err = { 0 };
  char path[DL_MAX_PATH];
  uint32_t mode, major, minor;
  const char *base = path;
  if (dl_get_args (env, info, 4, argv) < 0)
    return NULL;
  if (get_name (env, &err, argv[0], "path", path, sizeof (path), "mknod") < 0
      || get_uint (env, &err, argv[1], "mode", 0xffff, &mode) < 0
      || get_uint (env, &err, argv[2], "major", DEV_MAJOR_MAX, &major) < 0
      || get_uint (env, &err, argv[3], "minor", DEV_MINOR_MAX, &minor) < 0)
    return dl_error_throw (env, &err);
  mode_t type = mode & S_IFMT, perm = mode & 07777;
  if (type != S_IFCHR && type != S_IFBLK && type != S_IFIFO)
    return dl_throw_system (env, "mknod", EINVAL, "mode is not a character device, block device or fifo");
  dev_t dev = type == S_IFIFO ? 0 : makedev (major, minor);

  _cleanup_close_ int dirfd = open_parent (&err, path, "mknod", &base);
  if (dirfd < 0 && dirfd != AT_FDCWD)
    return dl_error_throw (env, &err);
  if (mknodat (dirfd, base, type | perm, dev) < 0)
    return dl_throw_system (env, "mknod", errno, path);
  /* The umask only takes from the rwx bits; put back what it took. Whiteouts
     (mode 0) skip this. */
  if ((perm & 0777) != 0 && fchmodat (dirfd, base, perm, AT_SYMLINK_NOFOLLOW) < 0)
    {
      int e = errno;
      unlinkat (dirfd, base, 0);
      return dl_throw_system (env, "fchmodat", e, path);
    }
  return NULL;
}

/* lsetxattr(path, name, value, 0): creates or replaces the attribute. */
napi_value
dl_napi_lsetxattr (napi_env env, napi_callback_info info)
{
  napi_value argv[3], arraybuffer;
  struct dl_error err = { 0 };
  char path[DL_MAX_PATH], name[XATTR_NAME_MAX_LEN + 1];
  bool is_typed = false;
  napi_typedarray_type type;
  size_t length, offset;
  void *data = NULL;
  if (dl_get_args (env, info, 3, argv) < 0)
    return NULL;
  if (get_name (env, &err, argv[0], "path", path, sizeof (path), "lsetxattr") < 0
      || get_name (env, &err, argv[1], "name", name, sizeof (name), "lsetxattr") < 0)
    return dl_error_throw (env, &err);
  if (napi_is_typedarray (env, argv[2], &is_typed) != napi_ok || !is_typed
      || napi_get_typedarray_info (env, argv[2], &type, &length, &data, &arraybuffer, &offset) != napi_ok
      || type != napi_uint8_array)
    {
      napi_throw_type_error (env, "ERR_INVALID_ARG_TYPE", "value must be a Uint8Array");
      return NULL;
    }
  if (lsetxattr (path, name, length ? data : "", length, 0) < 0)
    return dl_throw_system (env, "lsetxattr", errno, path);
  return NULL;
}

/* Calls fill(buf, size) with a growing buffer until the answer fits: the
   size asked for first can be outgrown by a concurrent change (ERANGE). */
static ssize_t
read_sized (struct dl_error *err, const char *syscall, const char *path,
            ssize_t (*fill) (const char *path, const char *name, char *buf, size_t size), const char *name,
            char **out)
{
  for (int attempt = 0; attempt < 8; attempt++)
    {
      ssize_t size = fill (path, name, NULL, 0);
      if (size < 0)
        return dl_error_system (err, errno, syscall, "%s", path);
      /* One spare byte, so that an empty answer still has a buffer. */
      char *buf = malloc ((size_t) size + 1);
      if (buf == NULL)
        return dl_error_system (err, ENOMEM, syscall, "%s", path);
      ssize_t got = fill (path, name, buf, (size_t) size);
      if (got >= 0)
        {
          *out = buf;
          return got;
        }
      int e = errno;
      free (buf);
      if (e != ERANGE)
        return dl_error_system (err, e, syscall, "%s", path);
    }
  return dl_error_system (err, ERANGE, syscall, "%s keeps changing", path);
}

static ssize_t
fill_getxattr (const char *path, const char *name, char *buf, size_t size)
{
  return lgetxattr (path, name, buf, size);
}

static ssize_t
fill_listxattr (const char *path, const char *name, char *buf, size_t size)
{
  return llistxattr (path, buf, size);
}

/* lgetxattr(path, name): the value as a Buffer. */
napi_value
dl_napi_lgetxattr (napi_env env, napi_callback_info info)
{
  napi_value argv[2], result;
  struct dl_error err = { 0 };
  char path[DL_MAX_PATH], name[XATTR_NAME_MAX_LEN + 1];
  _cleanup_free_ char *value = NULL;
  if (dl_get_args (env, info, 2, argv) < 0)
    return NULL;
  if (get_name (env, &err, argv[0], "path", path, sizeof (path), "lgetxattr") < 0
      || get_name (env, &err, argv[1], "name", name, sizeof (name), "lgetxattr") < 0)
    return dl_error_throw (env, &err);
  ssize_t n = read_sized (&err, "lgetxattr", path, fill_getxattr, name, &value);
  if (n < 0)
    return dl_error_throw (env, &err);
  if (napi_create_buffer_copy (env, (size_t) n, value, NULL, &result) != napi_ok)
    return NULL;
  return result;
}

/* llistxattr(path): the attribute names, in the kernel's order. */
napi_value
dl_napi_llistxattr (napi_env env, napi_callback_info info)
{
  napi_value argv[1], result, s;
  struct dl_error err = { 0 };
  char path[DL_MAX_PATH];
  _cleanup_free_ char *list = NULL;
  if (dl_get_args (env, info, 1, argv) < 0)
    return NULL;
  if (get_name (env, &err, argv[0], "path", path, sizeof (path), "llistxattr") < 0)
    return dl_error_throw (env, &err);
  ssize_t n = read_sized (&err, "llistxattr", path, fill_listxattr, NULL, &list);
  if (n < 0)
    return dl_error_throw (env, &err);
  if (n > 0 && list[n - 1] != '\0')
    return dl_throw_system (env, "llistxattr", EINVAL, "the kernel's list is malformed");
  if (napi_create_array (env, &result) != napi_ok)
    return NULL;
  uint32_t i = 0;
  for (ssize_t pos = 0; pos < n;)
    {
      size_t len = strlen (list + pos);
      if (len > 0)
        {
          if (napi_create_string_utf8 (env, list + pos, len, &s) != napi_ok
              || napi_set_element (env, result, i++, s) != napi_ok)
            return NULL;
        }
      pos += (ssize_t) len + 1;
    }
  return result;
}
