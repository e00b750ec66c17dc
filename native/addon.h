/*
 * Per-environment state of the addon (one per Node thread that loads it),
 * kept as N-API instance data.
 */
#ifndef DOCKLESS_ADDON_H
#define DOCKLESS_ADDON_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct dl_proc;

struct dl_addon
{
  napi_env env;
  uv_loop_t *loop;
  napi_ref system_error; /* the TypeScript classes handed to init() */
  napi_ref start_error;
  bool initialized;
  bool closing;          /* the environment is being torn down */

  int cap_last_cap;      /* /proc/sys/kernel/cap_last_cap */
  int own_pidns_fd;      /* this thread's PID namespace, to restore pid_for_children after a join */
  bool have_clone3;
  bool clone_vm;         /* the CLONE_VM|CLONE_VFORK design is usable (see spawn.c) */
  void *vm_stack;        /* the child's stack in that design, reused by every spawn */
  size_t vm_stack_size;

  struct dl_proc *procs; /* processes still watched, for the environment's cleanup */
};

/* The calling environment's state, or NULL (with a JS exception pending). */
struct dl_addon *dl_addon_get (napi_env env);

#endif
