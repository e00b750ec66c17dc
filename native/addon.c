/*
 * The module: per-environment state and the exported functions. The
 * contract with TypeScript is src/isolation/native-types.ts.
 */
#include "addon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clone.h"
#include "error.h"
#include "fsops.h"
#include "misc.h"
#include "security.h"
#include "spawn.h"
#include "syscalls.h"
#include "watch.h"

/* The CLONE_VM child's stack. It only runs the setup in child.c (small
   frames, one path buffer at a time); the guard page turns an overflow
   into a crash of the child instead of corrupting Node's memory. */
#define VM_STACK_SIZE (256 * 1024)

struct dl_addon *
dl_addon_get (napi_env env)
{
  void *data = NULL;
  if (napi_get_instance_data (env, &data) != napi_ok || data == NULL)
    {
      napi_throw_error (env, NULL, "dockless: the addon is not initialized in this environment");
      return NULL;
    }
  return data;
}

static void
cleanup_env (void *arg)
{
  struct dl_addon *addon = arg;
  addon->closing = true;
  dl_procs_cleanup (addon);
}

static void
finalize_addon (napi_env env, void *data, void *hint)
{
  struct dl_addon *addon = data;
  if (addon->own_pidns_fd >= 0)
    close (addon->own_pidns_fd);
  if (addon->vm_stack)
    munmap ((char *) addon->vm_stack - getpagesize (), addon->vm_stack_size + getpagesize ());
  /* The class references go with the environment. */
  free (addon);
}

static bool
probe_clone3 (void)
{
  /* A too-small size: EINVAL where clone3 exists, ENOSYS (or a seccomp
     EPERM in some sandboxes) where it does not. */
  return syscall (SYS_clone3, NULL, 0) < 0 && errno == EINVAL;
}

static void
setup_clone_vm (struct dl_addon *addon)
{
  const char *design = getenv ("DOCKLESS_NATIVE_SPAWN");
  if (!DL_HAVE_CLONE_VM || (design && strcmp (design, "fork") == 0))
    return;
  size_t page = (size_t) getpagesize ();
  char *m = mmap (NULL, VM_STACK_SIZE + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                  -1, 0);
  if (m == MAP_FAILED)
    return;
  mprotect (m, page, PROT_NONE);
  addon->vm_stack = m + page;
  addon->vm_stack_size = VM_STACK_SIZE;
  addon->clone_vm = true;
}

static napi_value
js_init (napi_env env, napi_callback_info info)
{
  size_t argc = 1;
  napi_value arg, system_error, start_error;
  napi_valuetype t1, t2;
  struct dl_addon *addon = dl_addon_get (env);
  if (addon == NULL || napi_get_cb_info (env, info, &argc, &arg, NULL, NULL) != napi_ok)
    return NULL;
  if (argc < 1 || napi_get_named_property (env, arg, "SystemError", &system_error) != napi_ok
      || napi_get_named_property (env, arg, "ContainerStartError", &start_error) != napi_ok
      || napi_typeof (env, system_error, &t1) != napi_ok || napi_typeof (env, start_error, &t2) != napi_ok
      || t1 != napi_function || t2 != napi_function)
    {
      napi_throw_type_error (env, "ERR_INVALID_ARG_TYPE",
                             "init() takes { SystemError, ContainerStartError } (two classes)");
      return NULL;
    }
  if (dl_error_set_classes (env, system_error, start_error) != napi_ok)
    return NULL;
  addon->initialized = true;
  return NULL;
}

NAPI_MODULE_INIT ()
{
  struct dl_addon *addon = calloc (1, sizeof (*addon));
  if (addon == NULL)
    {
      napi_throw_error (env, NULL, "dockless: out of memory");
      return NULL;
    }
  addon->env = env;
  if (napi_get_uv_event_loop (env, &addon->loop) != napi_ok)
    {
      free (addon);
      return NULL;
    }
  addon->cap_last_cap = dl_read_cap_last_cap ();
  addon->own_pidns_fd = open ("/proc/thread-self/ns/pid", O_RDONLY | O_CLOEXEC);
  addon->have_clone3 = probe_clone3 ();
  setup_clone_vm (addon);
  if (napi_set_instance_data (env, addon, finalize_addon, NULL) != napi_ok)
    {
      finalize_addon (env, addon, NULL);
      return NULL;
    }
  napi_add_env_cleanup_hook (env, cleanup_env, addon);

  napi_property_descriptor props[] = {
    { "init", NULL, js_init, NULL, NULL, NULL, napi_enumerable, NULL },
    { "spawn", NULL, dl_napi_spawn, NULL, NULL, NULL, napi_enumerable, NULL },
    { "signal", NULL, dl_napi_signal, NULL, NULL, NULL, napi_enumerable, NULL },
    { "ref", NULL, dl_napi_ref, NULL, NULL, NULL, napi_enumerable, NULL },
    { "pipe", NULL, dl_napi_pipe, NULL, NULL, NULL, napi_enumerable, NULL },
    { "openpty", NULL, dl_napi_openpty, NULL, NULL, NULL, napi_enumerable, NULL },
    { "openConsole", NULL, dl_napi_open_console, NULL, NULL, NULL, napi_enumerable, NULL },
    { "resizePty", NULL, dl_napi_resize_pty, NULL, NULL, NULL, napi_enumerable, NULL },
    { "flock", NULL, dl_napi_flock, NULL, NULL, NULL, napi_enumerable, NULL },
    { "unmount", NULL, dl_napi_unmount, NULL, NULL, NULL, napi_enumerable, NULL },
    { "mknod", NULL, dl_napi_mknod, NULL, NULL, NULL, napi_enumerable, NULL },
    { "lsetxattr", NULL, dl_napi_lsetxattr, NULL, NULL, NULL, napi_enumerable, NULL },
    { "lgetxattr", NULL, dl_napi_lgetxattr, NULL, NULL, NULL, napi_enumerable, NULL },
    { "llistxattr", NULL, dl_napi_llistxattr, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  if (napi_define_properties (env, exports, sizeof (props) / sizeof (props[0]), props) != napi_ok)
    return NULL;
  return exports;
}
