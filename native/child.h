/*
 * The child between clone and execve. It runs on a copy of the parent's
 * memory (fork design) or on the parent's memory itself (CLONE_VM design),
 * so it makes only raw system calls (dl_sys) on data prepared in the plan:
 * no malloc, no stdio, no locks, no errno, no JS.
 */
#ifndef DOCKLESS_CHILD_H
#define DOCKLESS_CHILD_H

#include "plan.h"

/* Sets the container up as the plan says and execs; never returns. */
__attribute__ ((noreturn)) void dl_child_main (struct dl_plan *plan);

/* The entry point for clones on a separate stack (arg is the plan). */
int dl_child_entry (void *arg);

/* Reports a failed step to the parent and exits; err is a negative errno. */
__attribute__ ((noreturn)) void dl_child_fail (struct dl_plan *plan, enum dl_step step, int op_index, long err);

/* "/proc/self/fd/N" into buf (at least 32 bytes): how mount(2) reaches an fd. */
const char *dl_fd_path (char *buf, int fd);

#endif
