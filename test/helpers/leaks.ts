import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Kernel state a dockless run could leave behind: overlay or container mounts
 * under test roots, dockless cgroups, and processes in nested PID namespaces.
 * Used after each test and after the whole suite (where `parents` also
 * counts the shared `dockless` parent cgroups, which closing the last engine removes).
 */
/**
 * Runs that share a machine (parallel CI jobs, several checkouts) keep apart by
 * setting DOCKLESS_CGROUP_PARENT (which Engine.open honours) and DOCKLESS_TEST_ID:
 * each run then checks only its own cgroup parent and temporary roots.
 */
export function cgroupParentName(): string {
  return process.env.DOCKLESS_CGROUP_PARENT ?? 'dockless';
}

/** Prefix of the temporary engine roots of this run. */
export function testRootPrefix(): string {
  const id = process.env.DOCKLESS_TEST_ID;
  return id ? `/tmp/dockless-test-${id}-` : '/tmp/dockless-test-';
}

export function findLeaks(options: { parents?: boolean } = {}): string[] {
  const leaks: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const mountPoint = f[4] ?? '';
    const fstype = f[f.indexOf('-') + 1] ?? '';
    const ours = process.env.DOCKLESS_TEST_ID ? mountPoint.startsWith(testRootPrefix()) : /dockless/.test(mountPoint) || (fstype === 'overlay' && !/\/(docker|containers|overlay2?)\//.test(mountPoint));
    if (ours) leaks.push(`mount: ${fstype} on ${mountPoint}`);
  }
  for (const ctrl of safeList('/sys/fs/cgroup')) {
    const base = join('/sys/fs/cgroup', ctrl);
    for (const name of safeList(base)) {
      if (name !== cgroupParentName()) continue;
      // The shared parent must go too once the last engine closes (while one is open it stays).
      if (options.parents) leaks.push(`cgroup: ${join(base, name)}`);
      const children = safeList(join(base, name)).filter((n) => /^[0-9a-f]{64}$/.test(n));
      for (const c of children) leaks.push(`cgroup: ${join(base, name, c)}`);
    }
  }
  for (const pid of safeList('/proc').filter((n) => /^\d+$/.test(n))) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/status`, 'utf8');
    } catch {
      continue;
    }
    const nspid = /^NSpid:\s+(.*)$/m.exec(status)?.[1]?.trim().split(/\s+/) ?? [];
    if (nspid.length < 2) continue;
    const cgroup = safeRead(`/proc/${pid}/cgroup`);
    if (/\/(docker|libpod|machine\.slice)/.test(cgroup)) continue;
    if (process.env.DOCKLESS_TEST_ID && !cgroup.includes(`/${cgroupParentName()}/`)) continue;
    leaks.push(`process: ${pid} ${safeRead(`/proc/${pid}/cmdline`).replace(/\0/g, ' ').slice(0, 80)}`);
  }
  return leaks;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
