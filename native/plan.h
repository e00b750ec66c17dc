/*
 * The spawn plan: everything the child needs between clone and execve,
 * prepared by the parent in one arena before clone. The child only reads it
 * (and, in the CLONE_VM design, writes its failure into `result`).
 */
#ifndef DOCKLESS_PLAN_H
#define DOCKLESS_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "syscalls.h"

/* Bounds the addon re-checks (TypeScript validates first). */
#define DL_MAX_STRING (1u << 20)
#define DL_MAX_PATH 4096
#define DL_MAX_LAYERS 500
#define DL_MAX_OPS 4096
#define DL_MAX_ARGS 65536
#define DL_MAX_EXEC_PATHS 256
#define DL_MAX_GROUPS 65536
#define DL_MAX_IDMAP 340
#define DL_MAX_PROCS_FDS 32
#define DL_MAX_SECCOMP_INSNS 4096
#define DL_HOSTNAME_MAX 64
#define DL_RLIMIT_COUNT 16

/* The setup steps, in the order the child runs them. Their names are what
   ContainerStartError.step says (see dl_step_name). */
enum dl_step
{
  DL_STEP_NONE = 0,
  DL_STEP_USERNS_SYNC,
  DL_STEP_CGROUP,
  DL_STEP_CGROUPNS,
  DL_STEP_SETNS,
  DL_STEP_MOUNT_PRIVATE,
  DL_STEP_MOUNT_ROOTFS,
  DL_STEP_OP,
  DL_STEP_REMOUNT_READONLY,
  DL_STEP_PIVOT_ROOT,
  DL_STEP_SETHOSTNAME,
  DL_STEP_LOOPBACK,
  DL_STEP_CHDIR,
  DL_STEP_RLIMIT,
  DL_STEP_CAPABILITIES,
  DL_STEP_SETGROUPS,
  DL_STEP_SETRESGID,
  DL_STEP_SETRESUID,
  DL_STEP_SETSID,
  DL_STEP_TTY,
  DL_STEP_STDIO,
  DL_STEP_CLOSE_RANGE,
  DL_STEP_NO_NEW_PRIVS,
  DL_STEP_PDEATHSIG,
  DL_STEP_SECCOMP,
  DL_STEP_EXECVE,
  DL_STEP__COUNT
};

/* What a failed child reports: written to the error pipe (fork design) or
   into shared memory (CLONE_VM design). */
struct dl_child_result
{
  int32_t step;
  int32_t op_index;
  int32_t err; /* positive errno */
};

enum dl_op_kind
{
  DL_OP_MOUNT,
  DL_OP_BIND,
  DL_OP_MKNOD,
  DL_OP_SYMLINK,
  DL_OP_MKDIRP,
  DL_OP_MASK,
  DL_OP_READONLY,
  DL_OP_WRITE,
};

struct dl_op
{
  enum dl_op_kind kind;
  const char *target;      /* absolute, normalized, inside the rootfs */
  const char *source;      /* mount: source string; bind: host path (for messages) */
  const char *fstype;      /* mount */
  const char *data;        /* mount: options; write: content */
  size_t data_len;         /* write */
  const char *link_to;     /* symlink */
  unsigned long flags;     /* mount, bind */
  uint32_t mode;           /* mknod (without S_IFCHR), mkdirp */
  uint64_t dev;            /* mknod */
  uint32_t uid, gid;       /* mknod, mkdirp */
  int src_fd;              /* bind: open_tree clone (or O_PATH fd when src_is_tree is false) */
  bool src_is_tree;        /* bind: src_fd is a detached mount from open_tree */
  bool src_is_dir;         /* bind: create a directory (else an empty file) as the target */
  const char *describe;    /* "mount proc on /proc": for the error's step name */
};

struct dl_rlimit
{
  uint32_t resource;
  uint64_t soft, hard;
};

enum dl_mode
{
  DL_MODE_INIT,
  DL_MODE_JOIN,
};

struct dl_chunk;

struct dl_plan
{
  struct dl_chunk *arena;      /* every allocation of the plan, the plan included */
  enum dl_mode mode;

  /* clone */
  uint64_t clone_flags;        /* namespace flags (CLONE_NEW*) */
  bool use_vm;                 /* CLONE_VM|CLONE_VFORK design (see spawn.c) */
  int cgroup_dir_fd;           /* CLONE_INTO_CGROUP, or -1 */
  int procs_fds[DL_MAX_PROCS_FDS + 1]; /* cgroup.procs files to write "0" into */
  int n_procs_fds;
  int owned_procs_fd;          /* cgroup.procs opened by the parent (clone(2) fallback), or -1 */
  bool unshare_cgroupns;       /* v1 placement: unshare(CLONE_NEWCGROUP) after the writes */
  int netns_fd;                /* init: setns to this network namespace, or -1 */
  int join_pidfd;              /* join: the target's pidfd (owned by the target's handle) */
  bool join_pidns;             /* join: enter the target's PID namespace (pid_for_children) */
  uint64_t join_ns_flags;      /* join: namespaces entered through join_pidfd */

  /* user namespace (fork design only): the child waits for the parent's maps */
  bool userns;
  const char *uid_map, *gid_map; /* "inside outside count\n" lines, written by the parent */
  int sync_r, sync_w;

  /* failure reporting */
  int err_r, err_w;            /* fork design: CLOEXEC pipe, EOF at execve */
  struct dl_child_result result; /* CLONE_VM design: written by the child */

  /* rootfs (init) */
  bool has_rootfs;
  const char **lower;          /* topmost first */
  size_t n_lower;
  const char *upper, *work, *target;
  const char *overlay_data;    /* legacy mount(2) data with escaped paths */
  bool readonly;
  bool overlay_volatile;        /* overlay "volatile": no syncfs of the upper fs at unmount */
  struct dl_op *ops;
  size_t n_ops;

  /* process */
  const char *hostname;
  const char **exec_paths;
  size_t n_exec_paths;
  char **argv;
  char **envp;
  const char *cwd;
  uint32_t uid, gid;
  uint32_t *groups;
  size_t n_groups;
  uint64_t caps;               /* kept capabilities (bit n = capability n) */
  int cap_last_cap;
  bool no_new_privs;
  void *seccomp_filter;        /* struct sock_filter[] */
  uint16_t seccomp_len;        /* instructions; 0: none */
  struct dl_rlimit rlimits[DL_RLIMIT_COUNT];
  size_t n_rlimits;
  int stdio[3];
  bool tty;
  bool kill_with_parent;
};

/* The name of a step for ContainerStartError. */
const char *dl_step_name (enum dl_step step);

#endif
