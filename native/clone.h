/*
 * clone3 with CLONE_VM: the child must not return into the parent's stack
 * frames (it shares them), so it starts in fn(arg) on its own stack, the way
 * glibc's internal clone3 does. A little assembly per architecture.
 */
#ifndef DOCKLESS_CLONE_H
#define DOCKLESS_CLONE_H

#include <stddef.h>

#include "syscalls.h"

#if DL_HAVE_RAW_SYSCALL && (defined(__x86_64__) || defined(__aarch64__))
#define DL_HAVE_CLONE_VM 1
/* Returns the child's pid or -errno; the child runs fn(arg) on the stack
   [args->stack, args->stack + args->stack_size) and exits with its result. */
long dl_clone3_vm (struct dl_clone_args *args, size_t size, int (*fn) (void *), void *arg);
#else
#define DL_HAVE_CLONE_VM 0
#endif

#endif
