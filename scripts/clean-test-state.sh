#!/bin/sh
# Removes what an aborted test run may leave: dockless cgroups (innermost
# first) and overlay mounts under /tmp/dockless-test-*. Only touches names
# dockless creates.
for c in /sys/fs/cgroup/*/dockless /sys/fs/cgroup/unified/dockless; do
  [ -d "$c" ] || continue
  find "$c" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
  rmdir "$c" 2>/dev/null
done
grep -o ' /tmp/dockless-test-[^ ]*' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
exit 0
