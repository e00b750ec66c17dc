/*
 * spawn(): plan, clone, and hand the child to the watcher.
 *
 * Two ways to clone, chosen per spawn:
 *
 * - The CLONE_VM design (posix_spawn style, the default): clone3 with
 *   CLONE_VM|CLONE_VFORK on a pre-allocated stack. No copy of Node's page
 *   tables is made, and Node's memory is not write-protected for
 *   copy-on-write (a fork leaves every page Node touches afterwards to take a
 *   page fault, and the child pays for tearing the copy down at execve). The
 *   calling thread sleeps until the child has exec'd or died, so `started`
 *   is settled synchronously from the failure record the child writes into
 *   shared memory. Measured on a 2-core VM (Linux 6.18, Node 20), spawning a
 *   container running `true` with a Docker-like set of rootfs ops: see
 *   README/report; the difference grows with Node's heap.
 *   The child shares Node's memory and TLS, so it makes only raw system
 *   calls (no errno writes) and runs with every signal blocked until its
 *   handlers are reset to SIG_DFL.
 *
 * - The fork design: clone3 without CLONE_VM (a copy-on-write copy of the
 *   process). Needed when the parent must act while the child waits: a new
 *   user namespace (the parent writes the id maps), and joining a container
 *   that has one (setns(CLONE_NEWUSER) refuses a task sharing its memory).
 *   Failures come back through a CLOEXEC pipe watched by libuv; EOF means
 *   execve succeeded.
 *
 * Both fall back to clone(2) with CLONE_PIDFD when clone3 is missing (then
 * the child writes cgroup.procs instead of CLONE_INTO_CGROUP).
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "child.h"
#include "clone.h"
#include "spec.h"
#include "util.h"
#include "watch.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void
kill_and_reap (int pidfd)
{
  siginfo_t si;
  syscall (SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
  while (waitid ((idtype_t) P_PIDFD, (id_t) pidfd, &si, WEXITED) < 0 && errno == EINTR)
    ;
  close (pidfd);
}

static long
clone_child (struct dl_addon *addon, struct dl_plan *plan, int *pidfd)
{
  uint64_t flags = plan->clone_flags | DL_CLONE_PIDFD;
  if (plan->unshare_cgroupns)
    flags &= ~(uint64_t) CLONE_NEWCGROUP;
  if (plan->use_vm)
    flags |= CLONE_VM | CLONE_VFORK;

  long pid;
  if (addon->have_clone3)
    {
      struct dl_clone_args args = {
        .flags = flags,
        .pidfd = (uint64_t) (uintptr_t) pidfd,
        .exit_signal = SIGCHLD,
      };
      if (plan->cgroup_dir_fd >= 0)
        {
          args.flags |= DL_CLONE_INTO_CGROUP;
          args.cgroup = (uint64_t) plan->cgroup_dir_fd;
        }
#if DL_HAVE_CLONE_VM
      if (plan->use_vm)
        {
          args.stack = (uint64_t) (uintptr_t) addon->vm_stack;
          args.stack_size = addon->vm_stack_size;
          return dl_clone3_vm (&args, sizeof (args), dl_child_entry, plan);
        }
#endif
      pid = dl_sys (SYS_clone3, &args, sizeof (args));
    }
  else
    {
      if (plan->use_vm)
        {
          void *top = (char *) addon->vm_stack + addon->vm_stack_size;
          pid = clone (dl_child_entry, top, (int) flags | SIGCHLD, plan, pidfd);
          return pid < 0 ? -errno : pid;
        }
      /* parent_tid (where CLONE_PIDFD stores the fd) is the third argument everywhere. */
      pid = dl_sys (SYS_clone, flags | SIGCHLD, 0, pidfd, 0, 0);
    }
  if (pid == 0)
    dl_child_main (plan);
  return pid;
}

static int
spawn_child (struct dl_addon *addon, struct dl_plan *plan, pid_t *pid_out, int *pidfd, struct dl_error *err)
{
  sigset_t all, saved;
  long pid;

  /* pid_for_children is per thread: entering the target's PID namespace
     here puts the new process in it, and restoring it right after affects
     nothing else. */
  if (plan->join_pidns)
    {
      if (addon->own_pidns_fd < 0)
        return dl_error_system (err, ENOTSUP, "setns", "this thread's PID namespace could not be opened");
      if (setns (plan->join_pidfd, CLONE_NEWPID) < 0)
        return dl_error_system (err, errno, "setns", "entering the PID namespace of the process to join");
    }

  /* No signal handler of Node may run in the child (with CLONE_VM it would
     run on Node's memory); the child resets them and unblocks at execve. */
  sigfillset (&all);
  pthread_sigmask (SIG_SETMASK, &all, &saved);
  pid = clone_child (addon, plan, pidfd);
  pthread_sigmask (SIG_SETMASK, &saved, NULL);

  if (plan->join_pidns && setns (addon->own_pidns_fd, CLONE_NEWPID) < 0)
    /* Every later child of this thread would land in the container. */
    napi_fatal_error ("dockless", NAPI_AUTO_LENGTH, "cannot restore pid_for_children after a join",
                      NAPI_AUTO_LENGTH);

  if (pid < 0)
    return dl_error_system (err, (int) -pid, addon->have_clone3 ? "clone3" : "clone", NULL);
  *pid_out = (pid_t) pid;
  return 0;
}

static int
write_proc_file (pid_t pid, const char *name, const char *data, struct dl_error *err)
{
  char path[64];
  snprintf (path, sizeof (path), "/proc/%d/%s", (int) pid, name);
  _cleanup_close_ int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    return dl_error_system (err, errno, "open", "%s", path);
  size_t len = strlen (data);
  /* The kernel takes a map in a single write. */
  ssize_t n = write (fd, data, len);
  if (n < 0)
    return dl_error_system (err, errno, "write", "%s", path);
  if ((size_t) n != len)
    return dl_error_system (err, EIO, "write", "%s: short write", path);
  return 0;
}

/* Fork design with a user namespace: the child waits on the sync pipe. */
static int
write_id_maps (struct dl_plan *plan, pid_t pid, struct dl_error *err)
{
  if (geteuid () != 0 && write_proc_file (pid, "setgroups", "deny", err) < 0)
    return -1;
  if (write_proc_file (pid, "uid_map", plan->uid_map, err) < 0
      || write_proc_file (pid, "gid_map", plan->gid_map, err) < 0)
    return -1;
  if (write (plan->sync_w, "1", 1) != 1)
    return dl_error_system (err, errno, "write", "user namespace sync pipe");
  close (plan->sync_w);
  plan->sync_w = -1;
  return 0;
}

static int
make_result (napi_env env, napi_value process, napi_value started, napi_value *result)
{
  return napi_create_object (env, result) == napi_ok
                 && napi_set_named_property (env, *result, "process", process) == napi_ok
                 && napi_set_named_property (env, *result, "started", started) == napi_ok
             ? 0
             : -1;
}

napi_value
dl_napi_spawn (napi_env env, napi_callback_info info)
{
  size_t argc = 2;
  napi_value argv[2], handle, started, result;
  napi_valuetype t;
  struct dl_error err = { 0 };
  _cleanup_plan_ struct dl_plan *plan = NULL;
  struct dl_proc *target = NULL;
  struct dl_addon *addon = dl_addon_get (env);
  if (addon == NULL || napi_get_cb_info (env, info, &argc, argv, NULL, NULL) != napi_ok)
    return NULL;
  if (argc < 2 || napi_typeof (env, argv[1], &t) != napi_ok || t != napi_function)
    {
      napi_throw_type_error (env, "ERR_INVALID_ARG_TYPE", "onExit must be a function");
      return NULL;
    }
  if (dl_plan_from_js (env, addon, argv[0], &plan, &target, &err) < 0)
    return dl_error_throw (env, &err);

  plan->use_vm = addon->clone_vm && !plan->userns && !(target && target->userns);
  if (!plan->use_vm)
    {
      int fds[2];
      if (pipe2 (fds, O_CLOEXEC | O_NONBLOCK) < 0)
        return dl_throw_system (env, "pipe2", errno, "error pipe");
      plan->err_r = fds[0];
      plan->err_w = fds[1];
    }
  if (plan->userns)
    {
      int fds[2];
      if (pipe2 (fds, O_CLOEXEC) < 0)
        return dl_throw_system (env, "pipe2", errno, "user namespace sync pipe");
      plan->sync_r = fds[0];
      plan->sync_w = fds[1];
    }

  pid_t pid = -1;
  int pidfd = -1;
  if (spawn_child (addon, plan, &pid, &pidfd, &err) < 0)
    return dl_error_throw (env, &err);
  dl_plan_close_child_fds (plan);

  if (plan->userns && write_id_maps (plan, pid, &err) < 0)
    {
      kill_and_reap (pidfd);
      return dl_error_throw (env, &err);
    }
  if (dl_proc_create (env, addon, &plan, pid, pidfd, argv[1], &handle, &started, &err) < 0)
    {
      kill_and_reap (pidfd);
      return dl_error_throw (env, &err);
    }
  if (make_result (env, handle, started, &result) < 0)
    return NULL;
  return result;
}
