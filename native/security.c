#include "security.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "util.h"

int
dl_read_cap_last_cap (void)
{
  char buf[16] = { 0 };
  _cleanup_close_ int fd = open ("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || read (fd, buf, sizeof (buf) - 1) <= 0)
    return CAP_LAST_CAP;
  int n = atoi (buf);
  return n > 0 && n < 64 ? n : CAP_LAST_CAP;
}

long
dl_set_rlimits (const struct dl_plan *plan)
{
  for (size_t i = 0; i < plan->n_rlimits; i++)
    {
      struct rlimit64 lim = { .rlim_cur = plan->rlimits[i].soft, .rlim_max = plan->rlimits[i].hard };
      long r = dl_sys (SYS_prlimit64, 0, plan->rlimits[i].resource, &lim, 0);
      if (r < 0)
        return r;
    }
  return 0;
}

long
dl_drop_bounding_set (const struct dl_plan *plan)
{
  for (int cap = 0; cap <= plan->cap_last_cap; cap++)
    if (!(plan->caps & (1ULL << cap)))
      {
        long r = dl_sys (SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0);
        if (r < 0 && r != -EINVAL)
          return r;
      }
  return 0;
}

long
dl_set_credentials (const struct dl_plan *plan, enum dl_step *step)
{
  /* Keep the permitted set across the uid change; capset then sets it. */
  *step = DL_STEP_CAPABILITIES;
  long r = dl_sys (SYS_prctl, PR_SET_KEEPCAPS, 1, 0, 0, 0);
  if (r < 0)
    return r;
  /* Raw system calls: they change only this task (glibc's wrappers would
     broadcast to the threads of a process we no longer are). */
  *step = DL_STEP_SETGROUPS;
  if ((r = dl_sys (SYS_setgroups, plan->n_groups, plan->groups)) < 0)
    return r;
  *step = DL_STEP_SETRESGID;
  if ((r = dl_sys (SYS_setresgid, plan->gid, plan->gid, plan->gid)) < 0)
    return r;
  *step = DL_STEP_SETRESUID;
  return dl_sys (SYS_setresuid, plan->uid, plan->uid, plan->uid);
}

long
dl_set_capabilities (const struct dl_plan *plan)
{
  struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct data[2] = { { 0 } };
  data[0].effective = data[0].permitted = (uint32_t) plan->caps;
  data[1].effective = data[1].permitted = (uint32_t) (plan->caps >> 32);
  long r = dl_sys (SYS_capset, &header, data);
  if (r < 0)
    return r;
  r = dl_sys (SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  return r == -EINVAL ? 0 : r;
}

long
dl_install_seccomp (const struct dl_plan *plan)
{
  struct sock_fprog prog = { .len = plan->seccomp_len, .filter = plan->seccomp_filter };
  return dl_sys (SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}
