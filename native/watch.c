#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spec.h"
#include "syscalls.h"
#include "util.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Marks NativeProcess objects, so that a look-alike object is refused. */
static const napi_type_tag proc_tag = { 0x646f636b6c657373ULL, 0x70726f6365737321ULL };

static void
maybe_free (struct dl_proc *proc)
{
  if (!proc->js_finalized || proc->open_handles > 0 || proc->watched)
    return;
  if (proc->plan)
    dl_plan_free (proc->plan);
  free (proc);
}

static void
on_finalize (napi_env env, void *data, void *hint)
{
  struct dl_proc *proc = data;
  proc->js_finalized = true;
  maybe_free (proc);
}

static void
on_handle_closed (uv_handle_t *h)
{
  struct dl_proc *proc = h->data;
  proc->open_handles--;
  maybe_free (proc);
}

static void
unlink_proc (struct dl_proc *proc)
{
  if (!proc->watched)
    return;
  struct dl_addon *addon = proc->addon;
  if (proc->prev)
    proc->prev->next = proc->next;
  else
    addon->procs = proc->next;
  if (proc->next)
    proc->next->prev = proc->prev;
  proc->prev = proc->next = NULL;
  proc->watched = false;
}

static void
close_err_watch (struct dl_proc *proc)
{
  if (proc->err_fd < 0)
    return;
  uv_poll_stop (&proc->err_poll);
  close (proc->err_fd);
  proc->err_fd = -1;
  uv_close ((uv_handle_t *) &proc->err_poll, on_handle_closed);
}

static void
close_exit_watch (struct dl_proc *proc)
{
  if (proc->pidfd < 0)
    return;
  uv_poll_stop (&proc->exit_poll);
  close (proc->pidfd);
  proc->pidfd = -1;
  uv_close ((uv_handle_t *) &proc->exit_poll, on_handle_closed);
}

void
dl_format_step (const struct dl_plan *plan, const struct dl_child_result *r, char *buf, size_t size)
{
  if (r->step == DL_STEP_OP && r->op_index >= 0 && (size_t) r->op_index < plan->n_ops)
    snprintf (buf, size, "op %d: %s", r->op_index, plan->ops[r->op_index].describe);
  else
    snprintf (buf, size, "%s", dl_step_name ((enum dl_step) r->step));
}

/* Settles `started` (a handle scope must be open): a failure record, or NULL
   when the child reached execve successfully. Frees the plan. */
static void
settle_started (struct dl_proc *proc, const struct dl_child_result *r)
{
  napi_env env = proc->env;
  if (proc->started_settled)
    return;
  proc->started_settled = true;
  if (r == NULL || r->err == 0)
    {
      napi_value undefined;
      napi_get_undefined (env, &undefined);
      napi_resolve_deferred (env, proc->started, undefined);
    }
  else
    {
      char step[DL_MAX_PATH + 96];
      dl_format_step (proc->plan, r, step, sizeof (step));
      const char *detail = r->step == DL_STEP_EXECVE ? proc->plan->argv[0] : NULL;
      napi_value e = dl_make_start_error (env, step, r->err, detail);
      if (e == NULL)
        {
          napi_value msg, ignored;
          napi_get_and_clear_last_exception (env, &ignored);
          napi_create_string_utf8 (env, step, NAPI_AUTO_LENGTH, &msg);
          napi_create_error (env, NULL, msg, &e);
        }
      napi_reject_deferred (env, proc->started, e);
    }
  proc->started = NULL;
  if (proc->plan)
    {
      dl_plan_free (proc->plan);
      proc->plan = NULL;
    }
}

/* Reads the child's failure record from the error pipe: 1 when one was
   read, 0 at EOF (the pipe closed at execve), -1 when nothing is there yet. */
static int
read_child_result (struct dl_proc *proc, struct dl_child_result *r)
{
  char *buf = (char *) r;
  size_t got = 0;
  while (got < sizeof (*r))
    {
      ssize_t n = read (proc->err_fd, buf + got, sizeof (*r) - got);
      if (n > 0)
        got += (size_t) n;
      else if (n == 0)
        break;
      else if (errno == EINTR)
        continue;
      else if (errno == EAGAIN && got == 0)
        return -1;
      else if (errno == EAGAIN)
        continue; /* a record is written whole; the rest is on its way */
      else
        break;
    }
  if (got == sizeof (*r))
    return 1;
  return 0;
}

static void
report_exception (napi_env env)
{
  bool pending = false;
  if (napi_is_exception_pending (env, &pending) == napi_ok && pending)
    {
      napi_value e;
      if (napi_get_and_clear_last_exception (env, &e) == napi_ok)
        napi_fatal_exception (env, e);
    }
}

/* Settles `started` inside its own callback scope, so that promise reactions
   (e.g. code after `await started`) run before onExit is called. */
static void
settle_started_async (struct dl_proc *proc, const struct dl_child_result *r)
{
  napi_env env = proc->env;
  napi_handle_scope hs;
  napi_callback_scope cs;
  napi_value resource;
  if (napi_open_handle_scope (env, &hs) != napi_ok)
    return;
  if (napi_get_reference_value (env, proc->self, &resource) == napi_ok && resource
      && napi_open_callback_scope (env, resource, proc->async, &cs) == napi_ok)
    {
      settle_started (proc, r);
      napi_close_callback_scope (env, cs);
    }
  report_exception (env);
  napi_close_handle_scope (env, hs);
}

static void
finish_start_watch (struct dl_proc *proc)
{
  struct dl_child_result r = { 0 };
  int got = read_child_result (proc, &r);
  close_err_watch (proc);
  settle_started_async (proc, got == 1 ? &r : NULL);
}

static void
on_err_readable (uv_poll_t *h, int status, int events)
{
  struct dl_proc *proc = h->data;
  if (proc->addon->closing || proc->err_fd < 0)
    return;
  struct dl_child_result r = { 0 };
  int got = read_child_result (proc, &r);
  if (got < 0 && status >= 0)
    return;
  close_err_watch (proc);
  settle_started_async (proc, got == 1 ? &r : NULL);
}

static void
call_on_exit (struct dl_proc *proc, const siginfo_t *si, bool known)
{
  napi_env env = proc->env;
  napi_handle_scope hs;
  if (napi_open_handle_scope (env, &hs) != napi_ok)
    return;
  napi_value fn, recv, exit, code, sig;
  napi_get_null (env, &code);
  napi_get_null (env, &sig);
  if (known && si->si_code == CLD_EXITED)
    napi_create_int32 (env, si->si_status, &code);
  else if (known && (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED))
    napi_create_int32 (env, si->si_status, &sig);
  napi_create_object (env, &exit);
  napi_set_named_property (env, exit, "exitCode", code);
  napi_set_named_property (env, exit, "signal", sig);
  /* napi_make_callback wants an object as `this`: the handle. */
  if (napi_get_reference_value (env, proc->self, &recv) != napi_ok || recv == NULL)
    napi_get_global (env, &recv);
  if (napi_get_reference_value (env, proc->on_exit, &fn) == napi_ok && fn)
    {
      napi_status s = napi_make_callback (env, proc->async, recv, fn, 1, &exit, NULL);
      if (s != napi_ok)
        report_exception (env);
    }
  napi_close_handle_scope (env, hs);
}

static void
release_js (struct dl_proc *proc)
{
  napi_env env = proc->env;
  if (proc->on_exit)
    napi_delete_reference (env, proc->on_exit);
  proc->on_exit = NULL;
  if (proc->async)
    napi_async_destroy (env, proc->async);
  proc->async = NULL;
  /* Last: deleting it lets the handle object be collected. */
  if (proc->self)
    napi_delete_reference (env, proc->self);
  proc->self = NULL;
}

static void
on_exit_readable (uv_poll_t *h, int status, int events)
{
  struct dl_proc *proc = h->data;
  if (proc->addon->closing || proc->pidfd < 0)
    return;
  siginfo_t si;
  memset (&si, 0, sizeof (si));
  int r;
  do
    r = waitid ((idtype_t) P_PIDFD, (id_t) proc->pidfd, &si, WEXITED | WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0 && si.si_pid == 0)
    return; /* not exited yet */
  /* r < 0 (ECHILD: reaped elsewhere): the status is unknown. */
  bool known = r == 0;

  close_exit_watch (proc);
  unlink_proc (proc);
  /* The error pipe is closed by now (exec or exit), so this does not block. */
  if (!proc->started_settled)
    {
      if (proc->err_fd >= 0)
        finish_start_watch (proc);
      else
        settle_started_async (proc, NULL);
    }
  call_on_exit (proc, &si, known);
  release_js (proc);
}

int
dl_proc_unwrap (napi_env env, napi_value value, const char *name, struct dl_proc **out, struct dl_error *err)
{
  napi_valuetype t;
  bool tagged = false;
  void *data = NULL;
  napi_status s = napi_typeof (env, value, &t);
  if (s != napi_ok)
    return dl_error_napi (err, env, s, name);
  if (t != napi_object || napi_check_object_type_tag (env, value, &proc_tag, &tagged) != napi_ok || !tagged
      || napi_unwrap (env, value, &data) != napi_ok || data == NULL)
    return dl_error_type (err, "%s must be a NativeProcess returned by spawn()", name);
  *out = data;
  return 0;
}

int
dl_proc_create (napi_env env, struct dl_addon *addon, struct dl_plan **planp, pid_t pid, int pidfd,
                napi_value on_exit, napi_value *handle, napi_value *started, struct dl_error *err)
{
  struct dl_plan *plan = *planp;
  struct dl_proc *proc = calloc (1, sizeof (*proc));
  if (proc == NULL)
    return dl_error_system (err, ENOMEM, "malloc", "process handle");
  proc->addon = addon;
  proc->env = env;
  proc->pid = pid;
  proc->pidfd = -1;
  proc->err_fd = -1;
  proc->userns = plan->userns;

  napi_status s;
  napi_value obj, pid_value, name;
  if ((s = napi_create_object (env, &obj)) != napi_ok || (s = napi_create_int32 (env, pid, &pid_value)) != napi_ok)
    {
      free (proc);
      return dl_error_napi (err, env, s, "process handle");
    }
  napi_property_descriptor pid_prop = { "pid", NULL, NULL, NULL, NULL, pid_value, napi_enumerable, NULL };
  if ((s = napi_define_properties (env, obj, 1, &pid_prop)) != napi_ok
      || (s = napi_type_tag_object (env, obj, &proc_tag)) != napi_ok
      || (s = napi_wrap (env, obj, proc, on_finalize, NULL, NULL)) != napi_ok)
    {
      free (proc);
      return dl_error_napi (err, env, s, "process handle");
    }
  /* From here the finalizer owns proc. */
  if ((s = napi_create_reference (env, obj, 1, &proc->self)) != napi_ok
      || (s = napi_create_reference (env, on_exit, 1, &proc->on_exit)) != napi_ok
      || (s = napi_create_promise (env, &proc->started, started)) != napi_ok
      || (s = napi_create_string_utf8 (env, "dockless.process", NAPI_AUTO_LENGTH, &name)) != napi_ok
      || (s = napi_async_init (env, obj, name, &proc->async)) != napi_ok)
    goto napi_failed;

  proc->exit_poll.data = proc;
  if (uv_poll_init (addon->loop, &proc->exit_poll, pidfd) != 0)
    {
      dl_error_system (err, EINVAL, "uv_poll_init", "pidfd");
      goto failed;
    }
  proc->open_handles++;
  proc->pidfd = pidfd;
  uv_poll_start (&proc->exit_poll, UV_READABLE, on_exit_readable);
  uv_unref ((uv_handle_t *) &proc->exit_poll);

  proc->watched = true;
  proc->next = addon->procs;
  if (addon->procs)
    addon->procs->prev = proc;
  addon->procs = proc;

  if (plan->use_vm)
    {
      /* CLONE_VFORK: the child has exec'd or died; its verdict is in memory.
         settle_started formats the failure from the plan, then frees it. */
      struct dl_child_result r = plan->result;
      proc->plan = plan;
      *planp = NULL;
      settle_started (proc, &r);
    }
  else
    {
      proc->plan = plan;
      *planp = NULL;
      proc->err_fd = dl_steal_fd (&plan->err_r);
      proc->err_poll.data = proc;
      if (uv_poll_init (addon->loop, &proc->err_poll, proc->err_fd) != 0)
        {
          /* Cannot happen for a pipe; settle from the exit watch instead. */
          close (proc->err_fd);
          proc->err_fd = -1;
        }
      else
        {
          proc->open_handles++;
          /* Referenced: `await started` alone keeps Node alive (briefly). */
          uv_poll_start (&proc->err_poll, UV_READABLE, on_err_readable);
        }
    }
  *handle = obj;
  return 0;

napi_failed:
  dl_error_napi (err, env, s, "process handle");
failed:
  /* The caller kills and reaps the child and closes pidfd. */
  if (proc->started)
    {
      napi_value undefined;
      napi_get_undefined (env, &undefined);
      napi_resolve_deferred (env, proc->started, undefined);
      proc->started = NULL;
    }
  release_js (proc);
  return -1;
}

void
dl_procs_cleanup (struct dl_addon *addon)
{
  while (addon->procs)
    {
      struct dl_proc *proc = addon->procs;
      unlink_proc (proc);
      close_err_watch (proc);
      close_exit_watch (proc);
    }
}

static int
get_proc_arg (napi_env env, napi_callback_info info, size_t want, napi_value *argv, struct dl_proc **proc)
{
  size_t argc = want;
  struct dl_error err = { 0 };
  if (napi_get_cb_info (env, info, &argc, argv, NULL, NULL) != napi_ok)
    return -1;
  for (size_t i = argc; i < want; i++)
    napi_get_undefined (env, &argv[i]);
  if (dl_proc_unwrap (env, argv[0], "process", proc, &err) < 0)
    {
      dl_error_throw (env, &err);
      return -1;
    }
  return 0;
}

napi_value
dl_napi_signal (napi_env env, napi_callback_info info)
{
  napi_value argv[2];
  struct dl_proc *proc;
  if (get_proc_arg (env, info, 2, argv, &proc) < 0)
    return NULL;
  napi_valuetype t;
  int32_t sig;
  double d;
  if (napi_typeof (env, argv[1], &t) != napi_ok || t != napi_number
      || napi_get_value_double (env, argv[1], &d) != napi_ok || d != (double) (int32_t) d)
    {
      napi_throw_type_error (env, "ERR_INVALID_ARG_TYPE", "signal must be an integer");
      return NULL;
    }
  sig = (int32_t) d;
  if (sig < 0 || sig > 64)
    {
      napi_throw_range_error (env, "ERR_OUT_OF_RANGE", "signal must be between 0 and 64");
      return NULL;
    }
  if (proc->pidfd < 0)
    return dl_throw_system (env, "pidfd_send_signal", ESRCH, "the process has exited");
  if (syscall (SYS_pidfd_send_signal, proc->pidfd, sig, NULL, 0) < 0)
    return dl_throw_system (env, "pidfd_send_signal", errno, NULL);
  return NULL;
}

napi_value
dl_napi_ref (napi_env env, napi_callback_info info)
{
  napi_value argv[2];
  struct dl_proc *proc;
  bool keep;
  if (get_proc_arg (env, info, 2, argv, &proc) < 0)
    return NULL;
  if (napi_get_value_bool (env, argv[1], &keep) != napi_ok)
    {
      napi_throw_type_error (env, "ERR_INVALID_ARG_TYPE", "keepAlive must be a boolean");
      return NULL;
    }
  proc->keep_alive = keep;
  if (proc->pidfd >= 0)
    {
      if (keep)
        uv_ref ((uv_handle_t *) &proc->exit_poll);
      else
        uv_unref ((uv_handle_t *) &proc->exit_poll);
    }
  return NULL;
}
