/*
 * NativeSpawnSpec (JS) -> struct dl_plan. Re-checks every type and bound,
 * copies every string into the plan's arena and opens the host-side objects
 * (bind-mount sources, pipes) so that the child needs nothing else.
 */
#ifndef DOCKLESS_SPEC_H
#define DOCKLESS_SPEC_H

#include <node_api.h>

#include "addon.h"
#include "error.h"
#include "plan.h"

struct dl_proc;

/* On success *out is a plan owned by the caller (free with dl_plan_free) and,
   for `join`, *join_target the target's process state (borrowed). */
int dl_plan_from_js (napi_env env, struct dl_addon *addon, napi_value spec, struct dl_plan **out,
                     struct dl_proc **join_target, struct dl_error *err);

/* Closes the fds the parent opened for the plan and frees its arena. */
void dl_plan_free (struct dl_plan *plan);

/* Closes the parent's copies of the fds only the child needs (after clone). */
void dl_plan_close_child_fds (struct dl_plan *plan);

static inline void
dl_plan_freep (struct dl_plan **p)
{
  if (*p)
    dl_plan_free (*p);
}
#define _cleanup_plan_ __attribute__ ((cleanup (dl_plan_freep)))

#endif
