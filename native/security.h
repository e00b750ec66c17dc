/*
 * Credentials, capabilities, rlimits and seccomp. The child-side functions
 * make raw system calls only and return 0 or a negative errno (and the step
 * that failed, where a function covers several).
 */
#ifndef DOCKLESS_SECURITY_H
#define DOCKLESS_SECURITY_H

#include "plan.h"

/* Parent side: the highest capability this kernel knows (cap_last_cap). */
int dl_read_cap_last_cap (void);

long dl_set_rlimits (const struct dl_plan *plan);
/* Drops every capability not kept from the bounding set. */
long dl_drop_bounding_set (const struct dl_plan *plan);
/* keepcaps, setgroups, setresgid, setresuid; *step names the one that failed. */
long dl_set_credentials (const struct dl_plan *plan, enum dl_step *step);
/* permitted = effective = kept, inheritable and ambient empty. */
long dl_set_capabilities (const struct dl_plan *plan);
long dl_install_seccomp (const struct dl_plan *plan);

#endif
