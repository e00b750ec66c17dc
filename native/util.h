/* Small helpers shared by the parent-side code. */
#ifndef DOCKLESS_UTIL_H
#define DOCKLESS_UTIL_H

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static inline void
dl_closep (int *fd)
{
  if (*fd >= 0)
    {
      int saved = errno;
      close (*fd);
      errno = saved;
      *fd = -1;
    }
}

static inline void
dl_freep (void *p)
{
  free (*(void **) p);
}

#define _cleanup_close_ __attribute__ ((cleanup (dl_closep)))
#define _cleanup_free_ __attribute__ ((cleanup (dl_freep)))

/* Returns the fd and leaves -1 behind, to hand an fd out of a cleanup scope. */
static inline int
dl_steal_fd (int *fd)
{
  int r = *fd;
  *fd = -1;
  return r;
}

#define DL_ARRAY_SIZE(a) (sizeof (a) / sizeof ((a)[0]))

#endif
