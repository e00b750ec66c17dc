/**
 * Chooses the cgroup driver from how this host mounts cgroups — the one place
 * that decision is made. The layout is read from /proc/self/mountinfo rather
 * than guessed from paths, because hosts differ: pure v2 (cgroup2 at
 * /sys/fs/cgroup), hybrid (v1 controllers plus a controller-less cgroup2 at
 * /sys/fs/cgroup/unified), pure v1, with cpu and cpuacct mounted together or
 * apart.
 * @module
 */

import * as fs from 'node:fs';
import { UnsupportedError } from '../../errors.js';
import { DEFAULT_CGROUP_PARENT, type CgroupDriver } from './driver.js';
import { CgroupV1Driver, V1_CONTROLLERS, type V1Controller } from './v1.js';
import { CgroupV2Driver } from './v2.js';

/** Where the cgroup hierarchies dockless can use are mounted. */
export interface CgroupLayout {
  /** Mount point of each v1 controller dockless uses; co-mounted controllers share one path. */
  v1: Partial<Record<V1Controller, string>>;
  /** Mount point of the cgroup2 hierarchy, if one is mounted. */
  unified?: string;
}

/** Options of {@link detectCgroupDriver}. */
export interface DetectCgroupOptions {
  /** Name of the parent cgroup container cgroups go in (default `dockless`); one path component. */
  parent?: string;
  /** The mountinfo file to read (default `/proc/self/mountinfo`). */
  mountinfo?: string;
}

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
function unescape(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

const USED = new Set<string>(V1_CONTROLLERS);

/**
 * Finds the cgroup mounts in the text of a mountinfo file. The first mount of
 * each v1 controller wins (later ones are bind mounts of the same hierarchy);
 * of several cgroup2 mounts, the one at /sys/fs/cgroup or /sys/fs/cgroup/unified
 * is preferred.
 */
export function parseCgroupMounts(mountinfo: string): CgroupLayout {
  const layout: CgroupLayout = { v1: {} };
  for (const line of mountinfo.split('\n')) {
    // "36 25 0:31 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory"
    const dash = line.indexOf(' - ');
    if (dash < 0) continue;
    const pre = line.slice(0, dash).split(' ');
    const [fstype, , superOpts = ''] = line.slice(dash + 3).split(' ');
    const mountPoint = pre[4];
    if (mountPoint === undefined) continue;
    if (fstype === 'cgroup2') {
      const path = unescape(mountPoint);
      const preferred = path === '/sys/fs/cgroup' || path === '/sys/fs/cgroup/unified';
      if (layout.unified === undefined || (preferred && !['/sys/fs/cgroup', '/sys/fs/cgroup/unified'].includes(layout.unified))) {
        layout.unified = path;
      }
    } else if (fstype === 'cgroup') {
      for (const opt of superOpts.split(',')) {
        if (USED.has(opt)) layout.v1[opt as V1Controller] ??= unescape(mountPoint);
      }
    }
  }
  return layout;
}

/** Reads the cgroup layout of this process's mount namespace. */
export function readCgroupLayout(mountinfo = '/proc/self/mountinfo'): CgroupLayout {
  return parseCgroupMounts(fs.readFileSync(mountinfo, 'latin1'));
}

/**
 * Which driver a layout calls for: v1 as soon as any controller dockless
 * limits with (memory, cpu, cpuacct, cpuset, pids, blkio) is mounted as v1 —
 * on a hybrid host that is where the controllers are, and a controller is in
 * one hierarchy only — else v2 if cgroup2 is mounted, else none.
 */
export function chooseCgroupVersion(layout: CgroupLayout): 1 | 2 | null {
  const limiting = V1_CONTROLLERS.filter((c) => c !== 'freezer');
  if (limiting.some((c) => layout.v1[c] !== undefined)) return 1;
  return layout.unified !== undefined ? 2 : null;
}

/**
 * Returns the driver for this host's cgroup layout (see {@link chooseCgroupVersion}),
 * keeping container cgroups under `parent` (default `dockless`) at the root of
 * each hierarchy. Nothing is created until the first container cgroup is.
 * Throws UnsupportedError when no cgroup filesystem is mounted.
 */
export function detectCgroupDriver(opts: DetectCgroupOptions = {}): CgroupDriver {
  const layout = readCgroupLayout(opts.mountinfo);
  const parent = opts.parent ?? DEFAULT_CGROUP_PARENT;
  switch (chooseCgroupVersion(layout)) {
    case 1:
      return new CgroupV1Driver({ mounts: layout.v1, parent });
    case 2:
      return new CgroupV2Driver({ mount: layout.unified!, parent });
    default:
      throw new UnsupportedError('no cgroup filesystem is mounted (looked for cgroup and cgroup2 in /proc/self/mountinfo)');
  }
}
