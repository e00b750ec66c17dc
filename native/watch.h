/*
 * Process handles: the JS NativeProcess object wraps a struct dl_proc that
 * owns the pidfd. libuv polls the pidfd; when it turns readable the process
 * is reaped with waitid(P_PIDFD) and onExit runs. In the fork design the
 * child's error pipe is polled too, to settle `started`.
 */
#ifndef DOCKLESS_WATCH_H
#define DOCKLESS_WATCH_H

#include <node_api.h>
#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "addon.h"
#include "error.h"
#include "plan.h"

struct dl_proc
{
  struct dl_addon *addon;
  struct dl_proc *prev, *next; /* addon->procs while watched */
  napi_env env;
  pid_t pid;
  int pidfd;                   /* -1 once reaped */
  bool userns;                 /* made a user namespace: joins enter it too */

  uv_poll_t exit_poll;         /* on pidfd */
  uv_poll_t err_poll;          /* on err_fd (fork design, until `started` settles) */
  int err_fd;
  int open_handles;            /* uv handles not yet closed */
  struct dl_plan *plan;        /* kept until `started` settles: names the failed step */

  bool watched;                /* in addon->procs */
  bool started_settled;
  bool keep_alive;
  bool js_finalized;

  napi_ref self;               /* strong while the process runs */
  napi_ref on_exit;
  napi_deferred started;
  napi_async_context async;
};

/* The process state behind a NativeProcess object (type-tag checked). */
int dl_proc_unwrap (napi_env env, napi_value value, const char *name, struct dl_proc **out,
                    struct dl_error *err);

/* Wraps a freshly cloned child. Takes ownership of pidfd and, in the fork
   design, of plan (and its error pipe). Sets *handle and *started. */
int dl_proc_create (napi_env env, struct dl_addon *addon, struct dl_plan **plan, pid_t pid, int pidfd,
                    napi_value on_exit, napi_value *handle, napi_value *started, struct dl_error *err);

/* Stops watching every process of an environment that is going away. */
void dl_procs_cleanup (struct dl_addon *addon);

/* The full step name for ContainerStartError ("op 3: mount proc on /proc"). */
void dl_format_step (const struct dl_plan *plan, const struct dl_child_result *r, char *buf, size_t size);

napi_value dl_napi_signal (napi_env env, napi_callback_info info);
napi_value dl_napi_ref (napi_env env, napi_callback_info info);

#endif
