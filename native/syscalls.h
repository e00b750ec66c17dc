/*
 * Raw system calls and the kernel ABI bits glibc does not (reliably) expose.
 *
 * The child between clone and execve may only make raw system calls: with
 * CLONE_VM it shares the parent's memory and thread-local storage, so even
 * glibc's errno must not be touched. dl_sys() returns the kernel's answer
 * directly: a value >= 0, or -errno.
 */
#ifndef DOCKLESS_SYSCALLS_H
#define DOCKLESS_SYSCALLS_H

#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define DL_HAVE_RAW_SYSCALL 1
static inline long
dl_syscall6 (long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
  register long r10 __asm__ ("r10") = a4;
  register long r8 __asm__ ("r8") = a5;
  register long r9 __asm__ ("r9") = a6;
  long ret;
  __asm__ volatile ("syscall"
                    : "=a"(ret)
                    : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                    : "rcx", "r11", "memory");
  return ret;
}
#elif defined(__aarch64__)
#define DL_HAVE_RAW_SYSCALL 1
static inline long
dl_syscall6 (long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
  register long x8 __asm__ ("x8") = n;
  register long x0 __asm__ ("x0") = a1;
  register long x1 __asm__ ("x1") = a2;
  register long x2 __asm__ ("x2") = a3;
  register long x3 __asm__ ("x3") = a4;
  register long x4 __asm__ ("x4") = a5;
  register long x5 __asm__ ("x5") = a6;
  __asm__ volatile ("svc 0"
                    : "+r"(x0)
                    : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                    : "memory");
  return x0;
}
#else
/* Elsewhere fall back to glibc's syscall(); it writes errno, so the
   CLONE_VM spawn path is disabled on these architectures (see clone.c). */
#include <errno.h>
#define DL_HAVE_RAW_SYSCALL 0
static inline long
dl_syscall6 (long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
  long r = syscall (n, a1, a2, a3, a4, a5, a6);
  return r < 0 ? -errno : r;
}
#endif

#define DL_SYS_N(n, a, b, c, d, e, f, ...)                                     \
  dl_syscall6 ((long) (n), (long) (a), (long) (b), (long) (c), (long) (d),     \
               (long) (e), (long) (f))
/* dl_sys(SYS_x, args...): up to six arguments, missing ones are zero. */
#define dl_sys(...) DL_SYS_N (__VA_ARGS__, 0, 0, 0, 0, 0, 0, 0)

/* System call numbers newer than some libc headers (the same on every
   architecture since they were added after the tables were unified). */
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig 431
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif

/* clone3 */
#define DL_CLONE_PIDFD 0x00001000ULL
#define DL_CLONE_INTO_CGROUP 0x200000000ULL
struct dl_clone_args
{
  uint64_t flags;
  uint64_t pidfd;
  uint64_t child_tid;
  uint64_t parent_tid;
  uint64_t exit_signal;
  uint64_t stack;
  uint64_t stack_size;
  uint64_t tls;
  uint64_t set_tid;
  uint64_t set_tid_size;
  uint64_t cgroup;
};

/* openat2 */
struct dl_open_how
{
  uint64_t flags;
  uint64_t mode;
  uint64_t resolve;
};
#define DL_RESOLVE_NO_XDEV 0x01
#define DL_RESOLVE_NO_MAGICLINKS 0x02
#define DL_RESOLVE_NO_SYMLINKS 0x04
#define DL_RESOLVE_BENEATH 0x08
#define DL_RESOLVE_IN_ROOT 0x10

/* The new mount API */
#define DL_OPEN_TREE_CLONE 1
#define DL_OPEN_TREE_CLOEXEC 02000000
#define DL_AT_RECURSIVE 0x8000
#define DL_MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#define DL_MOVE_MOUNT_T_EMPTY_PATH 0x00000040
#define DL_FSOPEN_CLOEXEC 0x00000001
#define DL_FSMOUNT_CLOEXEC 0x00000001
#define DL_FSCONFIG_SET_FLAG 0
#define DL_FSCONFIG_SET_STRING 1
#define DL_FSCONFIG_CMD_CREATE 6
#define DL_MOUNT_ATTR_RDONLY 0x00000001
#define DL_MOUNT_ATTR_NOSUID 0x00000002
#define DL_MOUNT_ATTR_NODEV 0x00000004
#define DL_MOUNT_ATTR_NOEXEC 0x00000008
struct dl_mount_attr
{
  uint64_t attr_set;
  uint64_t attr_clr;
  uint64_t propagation;
  uint64_t userns_fd;
};

/* close_range */
#define DL_CLOSE_RANGE_CLOEXEC (1U << 2)

/* The kernel's struct sigaction (not glibc's), for rt_sigaction. */
struct dl_ksigaction
{
  void *handler;
  unsigned long flags;
  void *restorer;
  uint64_t mask;
};

#endif
