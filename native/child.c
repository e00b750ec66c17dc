#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <net/if.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "mounts.h"
#include "security.h"

static const char *const step_names[DL_STEP__COUNT] = {
  [DL_STEP_NONE] = "unknown",
  [DL_STEP_USERNS_SYNC] = "userns-sync",
  [DL_STEP_CGROUP] = "cgroup",
  [DL_STEP_CGROUPNS] = "cgroupns",
  [DL_STEP_SETNS] = "setns",
  [DL_STEP_MOUNT_PRIVATE] = "mount-private",
  [DL_STEP_MOUNT_ROOTFS] = "mount-rootfs",
  [DL_STEP_OP] = "op",
  [DL_STEP_REMOUNT_READONLY] = "remount-readonly",
  [DL_STEP_PIVOT_ROOT] = "pivot_root",
  [DL_STEP_SETHOSTNAME] = "sethostname",
  [DL_STEP_LOOPBACK] = "loopback",
  [DL_STEP_CHDIR] = "chdir",
  [DL_STEP_RLIMIT] = "rlimit",
  [DL_STEP_CAPABILITIES] = "capabilities",
  [DL_STEP_SETGROUPS] = "setgroups",
  [DL_STEP_SETRESGID] = "setresgid",
  [DL_STEP_SETRESUID] = "setresuid",
  [DL_STEP_SETSID] = "setsid",
  [DL_STEP_TTY] = "tty",
  [DL_STEP_STDIO] = "stdio",
  [DL_STEP_CLOSE_RANGE] = "close_range",
  [DL_STEP_NO_NEW_PRIVS] = "no_new_privs",
  [DL_STEP_PDEATHSIG] = "pdeathsig",
  [DL_STEP_SECCOMP] = "seccomp",
  [DL_STEP_EXECVE] = "execve",
};

const char *
dl_step_name (enum dl_step step)
{
  if ((int) step < 0 || step >= DL_STEP__COUNT || step_names[step] == 0)
    return "unknown";
  return step_names[step];
}

const char *
dl_fd_path (char *buf, int fd)
{
  static const char prefix[] = "/proc/self/fd/";
  char digits[12];
  int n = 0, i = 0;
  unsigned v = (unsigned) fd;
  do
    digits[n++] = (char) ('0' + v % 10);
  while ((v /= 10) != 0);
  for (; prefix[i]; i++)
    buf[i] = prefix[i];
  while (n > 0)
    buf[i++] = digits[--n];
  buf[i] = '\0';
  return buf;
}

void
dl_child_fail (struct dl_plan *plan, enum dl_step step, int op_index, long err)
{
  struct dl_child_result r = { .step = step, .op_index = op_index, .err = (int32_t) -err };
  if (plan->use_vm)
    {
      /* Shared memory: the parent reads it when CLONE_VFORK lets it go on. */
      __atomic_store_n (&plan->result.op_index, r.op_index, __ATOMIC_RELAXED);
      __atomic_store_n (&plan->result.step, r.step, __ATOMIC_RELAXED);
      __atomic_store_n (&plan->result.err, r.err, __ATOMIC_RELEASE);
    }
  else
    dl_sys (SYS_write, plan->err_w, &r, sizeof (r));
  /* Docker's exit codes: 127 command not found, 126 not executable, 125 setup. */
  int code = 125;
  if (step == DL_STEP_EXECVE)
    code = (r.err == ENOENT || r.err == ENOTDIR) ? 127 : 126;
  for (;;)
    dl_sys (SYS_exit_group, code);
}

#define CHECK(step, expr)                                                                          \
  do                                                                                               \
    {                                                                                              \
      long r_ = (expr);                                                                            \
      if (r_ < 0)                                                                                  \
        dl_child_fail (plan, (step), -1, r_);                                                      \
    }                                                                                              \
  while (0)

static void
reset_signal_handlers (void)
{
  /* Node's handlers (and its SIG_IGN for SIGPIPE, which execve would keep)
     must not reach the container. The mask stays full until just before
     execve, so no handler can run meanwhile. */
  struct dl_ksigaction dfl = { .handler = SIG_DFL };
  for (int sig = 1; sig <= 64; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      dl_sys (SYS_rt_sigaction, sig, &dfl, 0, 8);
}

static long
setup_stdio (const struct dl_plan *plan)
{
  int fds[3] = { plan->stdio[0], plan->stdio[1], plan->stdio[2] };
  /* First move away any source that sits on another target's number. */
  for (int i = 0; i < 3; i++)
    if (fds[i] < 3 && fds[i] != i)
      {
        long fd = dl_sys (SYS_fcntl, fds[i], F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
          return fd;
        fds[i] = (int) fd;
      }
  for (int i = 0; i < 3; i++)
    {
      long r = fds[i] == i ? dl_sys (SYS_fcntl, i, F_SETFD, 0) : dl_sys (SYS_dup3, fds[i], i, 0);
      if (r < 0)
        return r;
    }
  return 0;
}

/* Tries every candidate as execvpe does: ENOENT, ENOTDIR and EACCES move on
   to the next; EACCES is reported over ENOENT when nothing could be run. */
__attribute__ ((noreturn)) static void
exec_candidates (struct dl_plan *plan)
{
  long last = -ENOENT;
  bool eacces = false;
  for (size_t i = 0; i < plan->n_exec_paths; i++)
    {
      long r = dl_sys (SYS_execve, plan->exec_paths[i], plan->argv, plan->envp);
      if (r == -EACCES)
        eacces = true;
      else if (r != -ENOENT && r != -ENOTDIR)
        dl_child_fail (plan, DL_STEP_EXECVE, -1, r);
      last = r;
    }
  dl_child_fail (plan, DL_STEP_EXECVE, -1, eacces ? -EACCES : last);
}

/* A new network namespace starts with `lo` down; Docker's "none" network has
   it up, and programs bind 127.0.0.1 expecting it to work. */
static long
loopback_up (void)
{
  struct ifreq ifr = { 0 };
  long r, fd = dl_sys (SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return fd;
  ifr.ifr_name[0] = 'l';
  ifr.ifr_name[1] = 'o';
  r = dl_sys (SYS_ioctl, fd, SIOCGIFFLAGS, &ifr);
  if (r == 0)
    {
      ifr.ifr_flags |= IFF_UP;
      r = dl_sys (SYS_ioctl, fd, SIOCSIFFLAGS, &ifr);
    }
  dl_sys (SYS_close, fd);
  return r;
}

static void
setup_filesystem (struct dl_plan *plan)
{
  int rootfd = -1;
  CHECK (DL_STEP_MOUNT_PRIVATE, dl_mount_private ());
  CHECK (DL_STEP_MOUNT_ROOTFS, dl_mount_rootfs (plan, &rootfd));
  for (size_t i = 0; i < plan->n_ops; i++)
    {
      long r = dl_run_op (rootfd, &plan->ops[i]);
      if (r < 0)
        dl_child_fail (plan, DL_STEP_OP, (int) i, r);
    }
  if (plan->readonly)
    CHECK (DL_STEP_REMOUNT_READONLY, dl_remount_readonly (rootfd));
  CHECK (DL_STEP_PIVOT_ROOT, dl_pivot_root (rootfd));
  dl_sys (SYS_close, rootfd);
}

void
dl_child_main (struct dl_plan *plan)
{
  reset_signal_handlers ();
  /* Modes of devices, directories and files made below are exact. */
  dl_sys (SYS_umask, 0);

  if (plan->userns)
    {
      /* Wait for the parent to write uid_map/gid_map. EOF: it gave up. */
      char c;
      dl_sys (SYS_close, plan->sync_w);
      long r = dl_sys (SYS_read, plan->sync_r, &c, 1);
      if (r != 1)
        dl_child_fail (plan, DL_STEP_USERNS_SYNC, -1, r < 0 ? r : -ECHILD);
      dl_sys (SYS_close, plan->sync_r);
      /* Become the namespace's root (the mapped 0), as crun does: until
         then this task still has the host's ids, unmapped here, so what it
         created would belong to the host's root. */
      CHECK (DL_STEP_SETRESGID, dl_sys (SYS_setresgid, 0, 0, 0));
      CHECK (DL_STEP_SETRESUID, dl_sys (SYS_setresuid, 0, 0, 0));
    }

  /* cgroup v1 placement (and v2 without clone3): before anything else, so
     that all the setup below is accounted to the container. */
  for (int i = 0; i < plan->n_procs_fds; i++)
    CHECK (DL_STEP_CGROUP, dl_sys (SYS_write, plan->procs_fds[i], "0", 1));
  if (plan->unshare_cgroupns)
    CHECK (DL_STEP_CGROUPNS, dl_sys (SYS_unshare, CLONE_NEWCGROUP));

  if (plan->mode == DL_MODE_INIT)
    {
      if (plan->netns_fd >= 0)
        CHECK (DL_STEP_SETNS, dl_sys (SYS_setns, plan->netns_fd, CLONE_NEWNET));
      else if (plan->clone_flags & CLONE_NEWNET)
        CHECK (DL_STEP_LOOPBACK, loopback_up ());
      if (plan->has_rootfs)
        setup_filesystem (plan);
      if (plan->hostname)
        {
          size_t len = 0;
          while (plan->hostname[len])
            len++;
          CHECK (DL_STEP_SETHOSTNAME, dl_sys (SYS_sethostname, plan->hostname, len));
        }
    }
  else
    /* Mount, UTS, IPC, network, cgroup (and user) namespaces of the target;
       its PID namespace was entered by the parent (pid_for_children). */
    CHECK (DL_STEP_SETNS, dl_sys (SYS_setns, plan->join_pidfd, plan->join_ns_flags));

  CHECK (DL_STEP_CHDIR, dl_sys (SYS_chdir, plan->cwd));

  /* rlimits while the capabilities still allow raising hard limits (as runc
     and crun do). */
  CHECK (DL_STEP_RLIMIT, dl_set_rlimits (plan));

  /* Without no_new_privs, installing a filter needs CAP_SYS_ADMIN, which is
     about to go: then it goes in now, and the calls below must be allowed by
     it (Docker's profile allows them). */
  if (plan->seccomp_len && !plan->no_new_privs)
    CHECK (DL_STEP_SECCOMP, dl_install_seccomp (plan));

  CHECK (DL_STEP_CAPABILITIES, dl_drop_bounding_set (plan));
  enum dl_step step;
  long r = dl_set_credentials (plan, &step);
  if (r < 0)
    dl_child_fail (plan, step, -1, r);
  CHECK (DL_STEP_CAPABILITIES, dl_set_capabilities (plan));

  CHECK (DL_STEP_STDIO, setup_stdio (plan));
  CHECK (DL_STEP_SETSID, dl_sys (SYS_setsid));
  if (plan->tty)
    CHECK (DL_STEP_TTY, dl_sys (SYS_ioctl, 0, TIOCSCTTY, 0));
  /* Everything but 0-2 closes at execve; the error pipe works until then. */
  CHECK (DL_STEP_CLOSE_RANGE, dl_sys (SYS_close_range, 3, ~0U, DL_CLOSE_RANGE_CLOEXEC));
  if (plan->no_new_privs)
    CHECK (DL_STEP_NO_NEW_PRIVS, dl_sys (SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
  /* After the credential changes, which clear it. */
  if (plan->kill_with_parent)
    CHECK (DL_STEP_PDEATHSIG, dl_sys (SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0));

  dl_sys (SYS_umask, 022);
  /* The empty mask of a fresh process, before the filter (which might not
     allow rt_sigprocmask). A pending signal now gets its default action. */
  uint64_t empty = 0;
  dl_sys (SYS_rt_sigprocmask, SIG_SETMASK, &empty, 0, 8);

  /* Last: the filter may forbid the calls above. */
  if (plan->seccomp_len && plan->no_new_privs)
    CHECK (DL_STEP_SECCOMP, dl_install_seccomp (plan));

  exec_candidates (plan);
}

int
dl_child_entry (void *arg)
{
  dl_child_main (arg);
}
