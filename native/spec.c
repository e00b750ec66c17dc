#include "spec.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "util.h"
#include "watch.h"

#ifndef MS_NOSYMFOLLOW
#define MS_NOSYMFOLLOW 256
#endif
#ifndef MS_LAZYTIME
#define MS_LAZYTIME (1 << 25)
#endif

#define MOUNT_OP_FLAGS                                                                             \
  (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_SYNCHRONOUS | MS_DIRSYNC | MS_NOATIME         \
   | MS_NODIRATIME | MS_RELATIME | MS_STRICTATIME | MS_LAZYTIME | MS_SILENT | MS_NOSYMFOLLOW)
#define PROPAGATION_FLAGS (MS_PRIVATE | MS_SLAVE | MS_SHARED | MS_UNBINDABLE)
#define BIND_OP_FLAGS                                                                              \
  (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME         \
   | MS_STRICTATIME | MS_NOSYMFOLLOW | MS_REC | PROPAGATION_FLAGS)

/* ---- arena: one list of chunks freed at once; pointers stay valid ---- */

struct dl_chunk
{
  struct dl_chunk *next;
  size_t used, cap;
  max_align_t data[];
};

static void *
arena_alloc (struct dl_chunk **head, size_t n)
{
  n = (n + 15) & ~(size_t) 15;
  struct dl_chunk *c = *head;
  if (c == NULL || c->cap - c->used < n)
    {
      size_t cap = n > 16384 ? n : 16384;
      c = malloc (sizeof (*c) + cap);
      if (c == NULL)
        return NULL;
      c->next = *head;
      c->used = 0;
      c->cap = cap;
      *head = c;
    }
  void *p = (char *) c->data + c->used;
  c->used += n;
  return p;
}

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

void
dl_plan_close_child_fds (struct dl_plan *plan)
{
  for (size_t i = 0; i < plan->n_ops; i++)
    if (plan->ops[i].kind == DL_OP_BIND)
      close_fd (&plan->ops[i].src_fd);
  close_fd (&plan->owned_procs_fd);
  close_fd (&plan->err_w);
  close_fd (&plan->sync_r);
}

void
dl_plan_free (struct dl_plan *plan)
{
  dl_plan_close_child_fds (plan);
  close_fd (&plan->err_r);
  close_fd (&plan->sync_w);
  struct dl_chunk *c = plan->arena;
  while (c)
    {
      struct dl_chunk *next = c->next;
      free (c);
      c = next;
    }
}

/* ---- typed getters: each re-checks a value and names it in the error ---- */

struct parse
{
  napi_env env;
  struct dl_plan *plan;
  struct dl_error *err;
};

static void *
palloc (struct parse *p, size_t n)
{
  void *r = arena_alloc (&p->plan->arena, n ? n : 1);
  if (r == NULL)
    dl_error_system (p->err, ENOMEM, "malloc", "spawn plan");
  return r;
}

static int
napi_fail (struct parse *p, napi_status s, const char *what)
{
  return dl_error_napi (p->err, p->env, s, what);
}

/* *present is false for undefined and null. */
static int
get_prop (struct parse *p, napi_value obj, const char *key, napi_value *out, bool *present)
{
  *present = false;
  napi_status s = napi_get_named_property (p->env, obj, key, out);
  if (s != napi_ok)
    return napi_fail (p, s, key);
  napi_valuetype t;
  if ((s = napi_typeof (p->env, *out, &t)) != napi_ok)
    return napi_fail (p, s, key);
  *present = t != napi_undefined && t != napi_null;
  return 0;
}

static int
require_prop (struct parse *p, napi_value obj, const char *key, const char *name, napi_value *out)
{
  bool present;
  if (get_prop (p, obj, key, out, &present) < 0)
    return -1;
  if (!present)
    return dl_error_type (p->err, "%s is required", name);
  return 0;
}

static int
check_type (struct parse *p, napi_value v, napi_valuetype want, const char *name, const char *what)
{
  napi_valuetype t;
  napi_status s = napi_typeof (p->env, v, &t);
  if (s != napi_ok)
    return napi_fail (p, s, name);
  if (t != want)
    return dl_error_type (p->err, "%s must be %s", name, what);
  return 0;
}

static int
get_object (struct parse *p, napi_value v, const char *name)
{
  return check_type (p, v, napi_object, name, "an object");
}

static int
get_bool (struct parse *p, napi_value v, const char *name, bool *out)
{
  if (check_type (p, v, napi_boolean, name, "a boolean") < 0)
    return -1;
  napi_status s = napi_get_value_bool (p->env, v, out);
  return s == napi_ok ? 0 : napi_fail (p, s, name);
}

static int
get_double (struct parse *p, napi_value v, const char *name, double *out)
{
  if (check_type (p, v, napi_number, name, "a number") < 0)
    return -1;
  napi_status s = napi_get_value_double (p->env, v, out);
  return s == napi_ok ? 0 : napi_fail (p, s, name);
}

/* An integer in [0, max]. */
static int
get_uint (struct parse *p, napi_value v, const char *name, uint64_t max, uint64_t *out)
{
  double d;
  if (get_double (p, v, name, &d) < 0)
    return -1;
  if (!isfinite (d) || floor (d) != d)
    return dl_error_range (p->err, "%s must be an integer (got %g)", name, d);
  if (d < 0 || d > (double) max)
    return dl_error_range (p->err, "%s must be between 0 and %llu (got %.0f)", name,
                           (unsigned long long) max, d);
  *out = (uint64_t) d;
  return 0;
}

static int
get_u32 (struct parse *p, napi_value v, const char *name, uint32_t max, uint32_t *out)
{
  uint64_t r = 0;
  if (get_uint (p, v, name, max, &r) < 0)
    return -1;
  *out = (uint32_t) r;
  return 0;
}

/* An open file descriptor. */
static int
get_fd (struct parse *p, napi_value v, const char *name, int *out)
{
  uint32_t fd;
  if (get_u32 (p, v, name, INT_MAX, &fd) < 0)
    return -1;
  if (fcntl ((int) fd, F_GETFD) < 0)
    return dl_error_system (p->err, errno, "fcntl", "%s (fd %u) is not an open file descriptor", name, fd);
  *out = (int) fd;
  return 0;
}

static int
get_string (struct parse *p, napi_value v, const char *name, size_t max, const char **out, size_t *len_out)
{
  if (check_type (p, v, napi_string, name, "a string") < 0)
    return -1;
  size_t len;
  napi_status s = napi_get_value_string_utf8 (p->env, v, NULL, 0, &len);
  if (s != napi_ok)
    return napi_fail (p, s, name);
  if (len > max)
    return dl_error_range (p->err, "%s is too long (%zu bytes, at most %zu)", name, len, max);
  char *buf = palloc (p, len + 1);
  if (buf == NULL)
    return -1;
  if ((s = napi_get_value_string_utf8 (p->env, v, buf, len + 1, &len)) != napi_ok)
    return napi_fail (p, s, name);
  if (strlen (buf) != len)
    return dl_error_value (p->err, "%s must not contain NUL characters", name);
  *out = buf;
  if (len_out)
    *len_out = len;
  return 0;
}

/* "/a/b": absolute, no empty, "." or ".." components, no trailing slash. */
static bool
path_is_normal (const char *s)
{
  if (s[0] != '/')
    return false;
  if (s[1] == '\0')
    return true;
  const char *c = s + 1;
  for (;;)
    {
      const char *e = strchr (c, '/');
      size_t n = e ? (size_t) (e - c) : strlen (c);
      if (n == 0 || n > NAME_MAX || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
        return false;
      if (e == NULL)
        return true;
      c = e + 1;
    }
}

enum path_kind
{
  PATH_ABSOLUTE,    /* any absolute path (host paths, cwd, exec paths) */
  PATH_IN_ROOTFS,   /* a normalized path inside the rootfs, not "/" itself */
};

static int
get_path (struct parse *p, napi_value v, const char *name, enum path_kind kind, const char **out)
{
  if (get_string (p, v, name, DL_MAX_PATH - 1, out, NULL) < 0)
    return -1;
  if ((*out)[0] != '/')
    return dl_error_value (p->err, "%s must be an absolute path (got %s)", name, *out);
  if (kind == PATH_IN_ROOTFS && (!path_is_normal (*out) || strcmp (*out, "/") == 0))
    return dl_error_value (p->err, "%s must be a normalized path below / (got %s)", name, *out);
  return 0;
}

static int
get_array (struct parse *p, napi_value v, const char *name, uint32_t max, uint32_t *len)
{
  bool is_array = false;
  napi_status s = napi_is_array (p->env, v, &is_array);
  if (s != napi_ok)
    return napi_fail (p, s, name);
  if (!is_array)
    return dl_error_type (p->err, "%s must be an array", name);
  if ((s = napi_get_array_length (p->env, v, len)) != napi_ok)
    return napi_fail (p, s, name);
  if (*len > max)
    return dl_error_range (p->err, "%s has too many elements (%u, at most %u)", name, *len, max);
  return 0;
}

static int
get_elem (struct parse *p, napi_value arr, uint32_t i, const char *name, napi_value *out)
{
  napi_status s = napi_get_element (p->env, arr, i, out);
  return s == napi_ok ? 0 : napi_fail (p, s, name);
}

/* A string array copied into a NULL-terminated char* array (for execve). */
static int
get_string_array (struct parse *p, napi_value v, const char *name, uint32_t max_n, bool absolute,
                  char ***out, size_t *n_out)
{
  uint32_t n;
  if (get_array (p, v, name, max_n, &n) < 0)
    return -1;
  char **arr = palloc (p, (n + 1) * sizeof (char *));
  if (arr == NULL)
    return -1;
  for (uint32_t i = 0; i < n; i++)
    {
      char ename[96];
      napi_value e;
      snprintf (ename, sizeof (ename), "%s[%u]", name, i);
      if (get_elem (p, v, i, ename, &e) < 0)
        return -1;
      const char *s;
      if (absolute ? get_path (p, e, ename, PATH_ABSOLUTE, &s) < 0
                   : get_string (p, e, ename, DL_MAX_STRING, &s, NULL) < 0)
        return -1;
      arr[i] = (char *) s;
    }
  arr[n] = NULL;
  *out = arr;
  *n_out = n;
  return 0;
}

/* ---- the spec's parts ---- */

static int
parse_rootfs (struct parse *p, napi_value r)
{
  struct dl_plan *plan = p->plan;
  napi_value v;
  uint32_t n;
  if (get_object (p, r, "spec.rootfs") < 0)
    return -1;
  if (require_prop (p, r, "lower", "spec.rootfs.lower", &v) < 0
      || get_array (p, v, "spec.rootfs.lower", DL_MAX_LAYERS, &n) < 0)
    return -1;
  if (n == 0)
    return dl_error_value (p->err, "spec.rootfs.lower must name at least one layer");
  plan->lower = palloc (p, n * sizeof (char *));
  if (plan->lower == NULL)
    return -1;
  for (uint32_t i = 0; i < n; i++)
    {
      char name[64];
      napi_value e;
      snprintf (name, sizeof (name), "spec.rootfs.lower[%u]", i);
      if (get_elem (p, v, i, name, &e) < 0 || get_path (p, e, name, PATH_ABSOLUTE, &plan->lower[i]) < 0)
        return -1;
    }
  plan->n_lower = n;
  if (require_prop (p, r, "upper", "spec.rootfs.upper", &v) < 0
      || get_path (p, v, "spec.rootfs.upper", PATH_ABSOLUTE, &plan->upper) < 0
      || require_prop (p, r, "work", "spec.rootfs.work", &v) < 0
      || get_path (p, v, "spec.rootfs.work", PATH_ABSOLUTE, &plan->work) < 0
      || require_prop (p, r, "target", "spec.rootfs.target", &v) < 0
      || get_path (p, v, "spec.rootfs.target", PATH_ABSOLUTE, &plan->target) < 0
      || require_prop (p, r, "readonly", "spec.rootfs.readonly", &v) < 0
      || get_bool (p, v, "spec.rootfs.readonly", &plan->readonly) < 0)
    return -1;
  bool has_volatile;
  if (get_prop (p, r, "volatile", &v, &has_volatile) < 0
      || (has_volatile && get_bool (p, v, "spec.rootfs.volatile", &plan->overlay_volatile) < 0))
    return -1;

  /* The legacy mount(2) options, used when the kernel lacks fsconfig's
     "lowerdir+": overlay accepts '\' escapes for ',' and ':' in paths. Longer
     than a page it would be truncated by the kernel, so it is left out and
     the child reports E2BIG if it needs it. */
  size_t cap = 80 + 2 * (strlen (plan->upper) + strlen (plan->work));
  for (size_t i = 0; i < n; i++)
    cap += 2 * strlen (plan->lower[i]) + 1;
  char *data = palloc (p, cap), *o = data;
  if (data == NULL)
    return -1;
#define APPEND_LIT(s) (memcpy (o, s, sizeof (s) - 1), o += sizeof (s) - 1)
#define APPEND_ESCAPED(path)                                                                       \
  for (const char *c = (path); *c; c++)                                                            \
    {                                                                                              \
      if (*c == ',' || *c == ':' || *c == '\\')                                                    \
        *o++ = '\\';                                                                               \
      *o++ = *c;                                                                                   \
    }
  if (plan->overlay_volatile)
    APPEND_LIT ("volatile,");
  APPEND_LIT ("index=off,lowerdir=");
  for (size_t i = 0; i < n; i++)
    {
      if (i)
        *o++ = ':';
      APPEND_ESCAPED (plan->lower[i]);
    }
  APPEND_LIT (",upperdir=");
  APPEND_ESCAPED (plan->upper);
  APPEND_LIT (",workdir=");
  APPEND_ESCAPED (plan->work);
  *o = '\0';
#undef APPEND_LIT
#undef APPEND_ESCAPED
  plan->overlay_data = (size_t) (o - data) < 4096 ? data : NULL;
  plan->has_rootfs = true;
  return 0;
}

/* Opens a bind-mount source on the host side: a detached copy of the mount
   tree (open_tree), else an O_PATH fd the child binds through /proc/self/fd. */
static int
open_bind_source (struct parse *p, struct dl_op *op, const char *name)
{
  unsigned flags = DL_OPEN_TREE_CLONE | DL_OPEN_TREE_CLOEXEC | ((op->flags & MS_REC) ? DL_AT_RECURSIVE : 0);
  int fd = (int) syscall (SYS_open_tree, AT_FDCWD, op->source, flags);
  op->src_is_tree = fd >= 0;
  if (fd < 0 && (errno == ENOSYS || errno == EPERM))
    fd = open (op->source, O_PATH | O_CLOEXEC);
  if (fd < 0)
    return dl_error_system (p->err, errno, op->src_is_tree ? "open_tree" : "open", "%s: %s", name, op->source);
  op->src_fd = fd;
  struct stat st;
  if (fstat (fd, &st) < 0)
    return dl_error_system (p->err, errno, "fstat", "%s: %s", name, op->source);
  op->src_is_dir = S_ISDIR (st.st_mode);
  return 0;
}

static int
parse_op (struct parse *p, napi_value o, uint32_t index, struct dl_op *op)
{
  char name[64], field[96];
  napi_value v;
  const char *kind;
  snprintf (name, sizeof (name), "spec.ops[%u]", index);
  op->src_fd = -1;
  if (get_object (p, o, name) < 0)
    return -1;

#define FIELD(key) (snprintf (field, sizeof (field), "%s.%s", name, key), field)
#define REQUIRE(key) require_prop (p, o, key, FIELD (key), &v)
  if (REQUIRE ("op") < 0 || get_string (p, v, FIELD ("op"), 16, &kind, NULL) < 0)
    return -1;
  if (REQUIRE ("target") < 0 || get_path (p, v, FIELD ("target"), PATH_IN_ROOTFS, &op->target) < 0)
    return -1;

  char describe[DL_MAX_PATH + 64];
  uint64_t u;
  if (strcmp (kind, "mount") == 0)
    {
      op->kind = DL_OP_MOUNT;
      if (REQUIRE ("fstype") < 0 || get_string (p, v, field, 64, &op->fstype, NULL) < 0
          || REQUIRE ("source") < 0 || get_string (p, v, field, DL_MAX_PATH - 1, &op->source, NULL) < 0
          || REQUIRE ("flags") < 0 || get_uint (p, v, field, UINT32_MAX, &u) < 0
          || REQUIRE ("data") < 0 || get_string (p, v, field, 4095, &op->data, NULL) < 0)
        return -1;
      if (op->fstype[0] == '\0')
        return dl_error_value (p->err, "%s.fstype must not be empty", name);
      if (u & ~(uint64_t) MOUNT_OP_FLAGS)
        return dl_error_value (p->err, "%s.flags has flags a new mount does not take (0x%llx)", name,
                               (unsigned long long) (u & ~(uint64_t) MOUNT_OP_FLAGS));
      op->flags = u;
      snprintf (describe, sizeof (describe), "mount %s on %s", op->fstype, op->target);
    }
  else if (strcmp (kind, "bind") == 0)
    {
      bool has_fd;
      op->kind = DL_OP_BIND;
      if (get_prop (p, o, "sourceFd", &v, &has_fd) < 0)
        return -1;
      if (has_fd)
        {
          /* A detached mount made by the caller (the console's devpts):
             the op owns a duplicate, so the caller may close its own. */
          int fd;
          if (get_fd (p, v, FIELD ("sourceFd"), &fd) < 0)
            return -1;
          op->src_fd = fcntl (fd, F_DUPFD_CLOEXEC, 3);
          if (op->src_fd < 0)
            return dl_error_system (p->err, errno, "fcntl", "%s", field);
          op->src_is_tree = true;
          op->src_is_dir = true;
          op->source = "(detached mount)";
        }
      else if (REQUIRE ("source") < 0 || get_path (p, v, field, PATH_ABSOLUTE, &op->source) < 0)
        return -1;
      if (REQUIRE ("flags") < 0 || get_uint (p, v, field, UINT32_MAX, &u) < 0)
        return -1;
      if (u & ~(uint64_t) BIND_OP_FLAGS)
        return dl_error_value (p->err, "%s.flags has flags a bind mount does not take (0x%llx)", name,
                               (unsigned long long) (u & ~(uint64_t) BIND_OP_FLAGS));
      uint64_t prop = u & PROPAGATION_FLAGS;
      if (prop & (prop - 1))
        return dl_error_value (p->err, "%s.flags has more than one propagation flag", name);
      op->flags = u;
      if (!has_fd && open_bind_source (p, op, name) < 0)
        return -1;
      snprintf (describe, sizeof (describe), "bind %s on %s", op->source, op->target);
    }
  else if (strcmp (kind, "mknod") == 0)
    {
      uint32_t major, minor;
      op->kind = DL_OP_MKNOD;
      if (REQUIRE ("mode") < 0 || get_u32 (p, v, field, 07777, &op->mode) < 0
          || REQUIRE ("major") < 0 || get_u32 (p, v, field, 0xfff, &major) < 0
          || REQUIRE ("minor") < 0 || get_u32 (p, v, field, 0xfffff, &minor) < 0
          || REQUIRE ("uid") < 0 || get_u32 (p, v, field, UINT32_MAX - 1, &op->uid) < 0
          || REQUIRE ("gid") < 0 || get_u32 (p, v, field, UINT32_MAX - 1, &op->gid) < 0)
        return -1;
      op->dev = makedev (major, minor);
      snprintf (describe, sizeof (describe), "mknod %s", op->target);
    }
  else if (strcmp (kind, "symlink") == 0)
    {
      op->kind = DL_OP_SYMLINK;
      if (REQUIRE ("linkTo") < 0 || get_string (p, v, field, DL_MAX_PATH - 1, &op->link_to, NULL) < 0)
        return -1;
      if (op->link_to[0] == '\0')
        return dl_error_value (p->err, "%s.linkTo must not be empty", name);
      snprintf (describe, sizeof (describe), "symlink %s -> %s", op->target, op->link_to);
    }
  else if (strcmp (kind, "mkdirp") == 0)
    {
      op->kind = DL_OP_MKDIRP;
      if (REQUIRE ("mode") < 0 || get_u32 (p, v, field, 07777, &op->mode) < 0
          || REQUIRE ("uid") < 0 || get_u32 (p, v, field, UINT32_MAX - 1, &op->uid) < 0
          || REQUIRE ("gid") < 0 || get_u32 (p, v, field, UINT32_MAX - 1, &op->gid) < 0)
        return -1;
      snprintf (describe, sizeof (describe), "mkdir %s", op->target);
    }
  else if (strcmp (kind, "mask") == 0)
    {
      op->kind = DL_OP_MASK;
      snprintf (describe, sizeof (describe), "mask %s", op->target);
    }
  else if (strcmp (kind, "readonly") == 0)
    {
      op->kind = DL_OP_READONLY;
      snprintf (describe, sizeof (describe), "readonly %s", op->target);
    }
  else if (strcmp (kind, "write") == 0)
    {
      op->kind = DL_OP_WRITE;
      if (REQUIRE ("content") < 0 || get_string (p, v, field, DL_MAX_STRING, &op->data, &op->data_len) < 0)
        return -1;
      snprintf (describe, sizeof (describe), "write %s", op->target);
    }
  else
    return dl_error_value (p->err, "%s.op is not a known operation (got %s)", name, kind);
#undef REQUIRE
#undef FIELD

  size_t len = strlen (describe);
  char *d = palloc (p, len + 1);
  if (d == NULL)
    return -1;
  memcpy (d, describe, len + 1);
  op->describe = d;
  return 0;
}

static int
parse_ops (struct parse *p, napi_value v)
{
  uint32_t n;
  if (get_array (p, v, "spec.ops", DL_MAX_OPS, &n) < 0)
    return -1;
  p->plan->ops = palloc (p, n * sizeof (struct dl_op));
  if (p->plan->ops == NULL)
    return -1;
  memset (p->plan->ops, 0, n * sizeof (struct dl_op));
  for (uint32_t i = 0; i < n; i++)
    p->plan->ops[i].src_fd = -1;
  for (uint32_t i = 0; i < n; i++)
    {
      napi_value o;
      /* Counted before parsing so that dl_plan_free closes what was opened. */
      p->plan->n_ops = i + 1;
      if (get_elem (p, v, i, "spec.ops", &o) < 0 || parse_op (p, o, i, &p->plan->ops[i]) < 0)
        return -1;
    }
  return 0;
}

/* "inside outside count\n" lines for /proc/PID/{uid,gid}_map. */
static int
parse_idmap (struct parse *p, napi_value v, const char *name, const char **out)
{
  uint32_t n;
  if (get_array (p, v, name, DL_MAX_IDMAP, &n) < 0)
    return -1;
  if (n == 0)
    return dl_error_value (p->err, "%s must have at least one line", name);
  char *buf = palloc (p, n * 36 + 1), *o = buf;
  if (buf == NULL)
    return -1;
  for (uint32_t i = 0; i < n; i++)
    {
      char ename[64], field[80];
      napi_value e, f;
      uint32_t inside, outside, count;
      snprintf (ename, sizeof (ename), "%s[%u]", name, i);
      if (get_elem (p, v, i, ename, &e) < 0 || get_object (p, e, ename) < 0)
        return -1;
#define ID(key, var, min)                                                                          \
  (snprintf (field, sizeof (field), "%s.%s", ename, key), require_prop (p, e, key, field, &f) < 0  \
                                                              || get_u32 (p, f, field, UINT32_MAX - 1, &var) < 0)
      if (ID ("inside", inside, 0) || ID ("outside", outside, 0) || ID ("count", count, 1))
        return -1;
#undef ID
      if (count == 0 || (uint64_t) inside + count > UINT32_MAX || (uint64_t) outside + count > UINT32_MAX)
        return dl_error_range (p->err, "%s: the range is empty or overflows", ename);
      o += sprintf (o, "%u %u %u\n", inside, outside, count);
    }
  *out = buf;
  return 0;
}

static int
parse_cgroup (struct parse *p, napi_value c, struct dl_addon *addon)
{
  struct dl_plan *plan = p->plan;
  napi_value v;
  bool present;
  if (get_object (p, c, "spec.cgroup") < 0)
    return -1;
  if (get_prop (p, c, "dirFd", &v, &present) < 0)
    return -1;
  if (present && get_fd (p, v, "spec.cgroup.dirFd", &plan->cgroup_dir_fd) < 0)
    return -1;
  if (get_prop (p, c, "procsFds", &v, &present) < 0)
    return -1;
  if (present)
    {
      uint32_t n;
      if (get_array (p, v, "spec.cgroup.procsFds", DL_MAX_PROCS_FDS, &n) < 0)
        return -1;
      for (uint32_t i = 0; i < n; i++)
        {
          char name[64];
          napi_value e;
          snprintf (name, sizeof (name), "spec.cgroup.procsFds[%u]", i);
          if (get_elem (p, v, i, name, &e) < 0 || get_fd (p, e, name, &plan->procs_fds[i]) < 0)
            return -1;
        }
      plan->n_procs_fds = (int) n;
      /* cgroup v1: the cgroup namespace is made after the move, so that its
         root is the container's own cgroup. */
      plan->unshare_cgroupns = n > 0 && plan->mode == DL_MODE_INIT;
    }
  if (plan->cgroup_dir_fd >= 0 && !addon->have_clone3)
    {
      /* clone(2) has no CLONE_INTO_CGROUP: the child writes cgroup.procs. */
      int fd = openat (plan->cgroup_dir_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
      if (fd < 0)
        return dl_error_system (p->err, errno, "open", "cgroup.procs of spec.cgroup.dirFd");
      plan->owned_procs_fd = fd;
      plan->procs_fds[plan->n_procs_fds++] = fd;
      plan->cgroup_dir_fd = -1;
    }
  return 0;
}

static int
parse_rlimits (struct parse *p, napi_value v)
{
  uint32_t n;
  if (get_array (p, v, "spec.rlimits", DL_RLIMIT_COUNT, &n) < 0)
    return -1;
  for (uint32_t i = 0; i < n; i++)
    {
      char name[64], field[80];
      napi_value e, f;
      struct dl_rlimit *r = &p->plan->rlimits[i];
      snprintf (name, sizeof (name), "spec.rlimits[%u]", i);
      if (get_elem (p, v, i, name, &e) < 0 || get_object (p, e, name) < 0)
        return -1;
      snprintf (field, sizeof (field), "%s.resource", name);
      if (require_prop (p, e, "resource", field, &f) < 0
          || get_u32 (p, f, field, RLIM_NLIMITS - 1, &r->resource) < 0)
        return -1;
      uint64_t *vals[2] = { &r->soft, &r->hard };
      const char *keys[2] = { "soft", "hard" };
      for (int k = 0; k < 2; k++)
        {
          double d;
          snprintf (field, sizeof (field), "%s.%s", name, keys[k]);
          if (require_prop (p, e, keys[k], field, &f) < 0 || get_double (p, f, field, &d) < 0)
            return -1;
          /* Infinity or -1: unlimited. */
          if (d == INFINITY || d == -1)
            *vals[k] = RLIM_INFINITY;
          else if (get_uint (p, f, field, (1ULL << 53), vals[k]) < 0)
            return -1;
        }
      if (r->soft > r->hard)
        return dl_error_range (p->err, "%s: soft limit above the hard limit", name);
    }
  p->plan->n_rlimits = n;
  return 0;
}

static int
parse_seccomp (struct parse *p, napi_value v)
{
  bool is_typedarray = false;
  napi_typedarray_type type;
  size_t length, offset;
  void *data;
  napi_value buffer;
  napi_status s = napi_is_typedarray (p->env, v, &is_typedarray);
  if (s != napi_ok)
    return napi_fail (p, s, "spec.seccomp");
  if (!is_typedarray)
    return dl_error_type (p->err, "spec.seccomp must be a Uint8Array");
  if ((s = napi_get_typedarray_info (p->env, v, &type, &length, &data, &buffer, &offset)) != napi_ok)
    return napi_fail (p, s, "spec.seccomp");
  if (type != napi_uint8_array)
    return dl_error_type (p->err, "spec.seccomp must be a Uint8Array");
  if (length == 0 || length % 8 != 0 || length / 8 > DL_MAX_SECCOMP_INSNS)
    return dl_error_range (p->err, "spec.seccomp must hold 1 to %d instructions of 8 bytes (got %zu bytes)",
                           DL_MAX_SECCOMP_INSNS, length);
  void *copy = palloc (p, length);
  if (copy == NULL)
    return -1;
  memcpy (copy, data, length);
  p->plan->seccomp_filter = copy;
  p->plan->seccomp_len = (uint16_t) (length / 8);
  return 0;
}

static uint64_t
parent_permitted_caps (void)
{
  struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct data[2] = { { 0 } };
  if (syscall (SYS_capget, &header, data) < 0)
    return ~0ULL;
  return (uint64_t) data[0].permitted | ((uint64_t) data[1].permitted << 32);
}

static int
parse_spec (struct parse *p, napi_value spec, struct dl_addon *addon, struct dl_proc **join_target)
{
  struct dl_plan *plan = p->plan;
  napi_value v;
  bool present;
  const char *mode;

  if (get_object (p, spec, "spec") < 0)
    return -1;
  if (require_prop (p, spec, "mode", "spec.mode", &v) < 0 || get_string (p, v, "spec.mode", 8, &mode, NULL) < 0)
    return -1;
  if (strcmp (mode, "init") == 0)
    plan->mode = DL_MODE_INIT;
  else if (strcmp (mode, "join") == 0)
    plan->mode = DL_MODE_JOIN;
  else
    return dl_error_value (p->err, "spec.mode must be 'init' or 'join' (got %s)", mode);
  bool init = plan->mode == DL_MODE_INIT;

  if (init)
    {
      bool new_network = true;
      plan->clone_flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP;
      if (get_prop (p, spec, "newNetwork", &v, &present) < 0
          || (present && get_bool (p, v, "spec.newNetwork", &new_network) < 0))
        return -1;
      if (get_prop (p, spec, "netnsFd", &v, &present) < 0
          || (present && get_fd (p, v, "spec.netnsFd", &plan->netns_fd) < 0))
        return -1;
      if (new_network && plan->netns_fd < 0)
        plan->clone_flags |= CLONE_NEWNET;

      if (get_prop (p, spec, "userns", &v, &present) < 0)
        return -1;
      if (present)
        {
          napi_value m;
          if (get_object (p, v, "spec.userns") < 0
              || require_prop (p, v, "uidMap", "spec.userns.uidMap", &m) < 0
              || parse_idmap (p, m, "spec.userns.uidMap", &plan->uid_map) < 0
              || require_prop (p, v, "gidMap", "spec.userns.gidMap", &m) < 0
              || parse_idmap (p, m, "spec.userns.gidMap", &plan->gid_map) < 0)
            return -1;
          plan->userns = true;
          plan->clone_flags |= CLONE_NEWUSER;
        }

      if (require_prop (p, spec, "rootfs", "spec.rootfs", &v) < 0 || parse_rootfs (p, v) < 0)
        return -1;
      if (get_prop (p, spec, "ops", &v, &present) < 0 || (present && parse_ops (p, v) < 0))
        return -1;
    }
  else
    {
      static const char *init_only[] = { "rootfs", "ops", "userns", "netnsFd", "newNetwork", "hostname" };
      for (size_t i = 0; i < DL_ARRAY_SIZE (init_only); i++)
        {
          if (get_prop (p, spec, init_only[i], &v, &present) < 0)
            return -1;
          if (present)
            return dl_error_value (p->err, "spec.%s is only for mode 'init'", init_only[i]);
        }
      struct dl_proc *target;
      if (require_prop (p, spec, "join", "spec.join", &v) < 0
          || dl_proc_unwrap (p->env, v, "spec.join", &target, p->err) < 0)
        return -1;
      if (target->pidfd < 0)
        return dl_error_system (p->err, ESRCH, "setns", "the process to join (pid %d) has exited", (int) target->pid);
      plan->join_pidfd = target->pidfd;
      plan->join_pidns = true;
      plan->join_ns_flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP
                            | (target->userns ? CLONE_NEWUSER : 0);
      *join_target = target;
    }

  if (get_prop (p, spec, "hostname", &v, &present) < 0)
    return -1;
  if (present && get_string (p, v, "spec.hostname", DL_HOSTNAME_MAX, &plan->hostname, NULL) < 0)
    return -1;

  if (require_prop (p, spec, "execPaths", "spec.execPaths", &v) < 0
      || get_string_array (p, v, "spec.execPaths", DL_MAX_EXEC_PATHS, true, (char ***) &plan->exec_paths,
                           &plan->n_exec_paths) < 0)
    return -1;
  if (plan->n_exec_paths == 0)
    return dl_error_value (p->err, "spec.execPaths must name at least one path");
  size_t n;
  if (require_prop (p, spec, "argv", "spec.argv", &v) < 0
      || get_string_array (p, v, "spec.argv", DL_MAX_ARGS, false, &plan->argv, &n) < 0)
    return -1;
  if (n == 0)
    return dl_error_value (p->err, "spec.argv must have at least argv[0]");
  if (require_prop (p, spec, "env", "spec.env", &v) < 0
      || get_string_array (p, v, "spec.env", DL_MAX_ARGS, false, &plan->envp, &n) < 0)
    return -1;
  if (require_prop (p, spec, "cwd", "spec.cwd", &v) < 0 || get_path (p, v, "spec.cwd", PATH_ABSOLUTE, &plan->cwd) < 0)
    return -1;
  if (require_prop (p, spec, "uid", "spec.uid", &v) < 0 || get_u32 (p, v, "spec.uid", UINT32_MAX - 1, &plan->uid) < 0
      || require_prop (p, spec, "gid", "spec.gid", &v) < 0
      || get_u32 (p, v, "spec.gid", UINT32_MAX - 1, &plan->gid) < 0)
    return -1;

  uint32_t count;
  if (require_prop (p, spec, "additionalGids", "spec.additionalGids", &v) < 0
      || get_array (p, v, "spec.additionalGids", DL_MAX_GROUPS, &count) < 0)
    return -1;
  plan->groups = palloc (p, (count ? count : 1) * sizeof (uint32_t));
  if (plan->groups == NULL)
    return -1;
  for (uint32_t i = 0; i < count; i++)
    {
      char name[64];
      napi_value e;
      snprintf (name, sizeof (name), "spec.additionalGids[%u]", i);
      if (get_elem (p, v, i, name, &e) < 0 || get_u32 (p, e, name, UINT32_MAX - 1, &plan->groups[i]) < 0)
        return -1;
    }
  plan->n_groups = count;

  if (require_prop (p, spec, "capabilities", "spec.capabilities", &v) < 0
      || get_array (p, v, "spec.capabilities", 64, &count) < 0)
    return -1;
  for (uint32_t i = 0; i < count; i++)
    {
      char name[64];
      napi_value e;
      uint32_t cap;
      snprintf (name, sizeof (name), "spec.capabilities[%u]", i);
      if (get_elem (p, v, i, name, &e) < 0 || get_u32 (p, e, name, 63, &cap) < 0)
        return -1;
      /* A capability this kernel does not know cannot be kept: ignored. */
      if ((int) cap <= plan->cap_last_cap)
        plan->caps |= 1ULL << cap;
    }

  /* Nor can one the parent does not have (a restricted host: capset would
     fail with EPERM); like an unknown one it is left out. */
  plan->caps &= parent_permitted_caps ();

  if (require_prop (p, spec, "noNewPrivileges", "spec.noNewPrivileges", &v) < 0
      || get_bool (p, v, "spec.noNewPrivileges", &plan->no_new_privs) < 0)
    return -1;
  if (get_prop (p, spec, "seccomp", &v, &present) < 0 || (present && parse_seccomp (p, v) < 0))
    return -1;
  if (require_prop (p, spec, "rlimits", "spec.rlimits", &v) < 0 || parse_rlimits (p, v) < 0)
    return -1;

  if (require_prop (p, spec, "stdio", "spec.stdio", &v) < 0 || get_array (p, v, "spec.stdio", 3, &count) < 0)
    return -1;
  if (count != 3)
    return dl_error_value (p->err, "spec.stdio must have exactly 3 fds");
  for (uint32_t i = 0; i < 3; i++)
    {
      char name[32];
      napi_value e;
      snprintf (name, sizeof (name), "spec.stdio[%u]", i);
      if (get_elem (p, v, i, name, &e) < 0 || get_fd (p, e, name, &plan->stdio[i]) < 0)
        return -1;
    }
  if (require_prop (p, spec, "tty", "spec.tty", &v) < 0 || get_bool (p, v, "spec.tty", &plan->tty) < 0)
    return -1;
  if (get_prop (p, spec, "cgroup", &v, &present) < 0 || (present && parse_cgroup (p, v, addon) < 0))
    return -1;
  if (require_prop (p, spec, "killWithParent", "spec.killWithParent", &v) < 0
      || get_bool (p, v, "spec.killWithParent", &plan->kill_with_parent) < 0)
    return -1;
  return 0;
}

int
dl_plan_from_js (napi_env env, struct dl_addon *addon, napi_value spec, struct dl_plan **out,
                 struct dl_proc **join_target, struct dl_error *err)
{
  struct dl_chunk *head = NULL;
  struct dl_plan *plan = arena_alloc (&head, sizeof (*plan));
  if (plan == NULL)
    return dl_error_system (err, ENOMEM, "malloc", "spawn plan");
  memset (plan, 0, sizeof (*plan));
  plan->arena = head;
  plan->cgroup_dir_fd = plan->netns_fd = plan->join_pidfd = -1;
  plan->owned_procs_fd = plan->sync_r = plan->sync_w = plan->err_r = plan->err_w = -1;
  plan->cap_last_cap = addon->cap_last_cap;
  *join_target = NULL;

  struct parse p = { .env = env, .plan = plan, .err = err };
  if (parse_spec (&p, spec, addon, join_target) < 0)
    {
      dl_plan_free (plan);
      return -1;
    }
  *out = plan;
  return 0;
}
