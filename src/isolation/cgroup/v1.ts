/**
 * The cgroup v1 driver: one directory per container in each controller's
 * hierarchy (`<mount>/<parent>/<id>`), found from the mounts the layout
 * reports, co-mounted controllers (cpu,cpuacct) sharing one directory.
 * @module
 */

import * as fs from 'node:fs';
import { join } from 'node:path';
import type { NativeCgroupPlacement } from '../native-types.js';
import { DEFAULT_CGROUP_PARENT, type Cgroup, type CgroupDriver, type CgroupLimits, type CgroupStats, type CgroupWrite, type DeviceRate } from './driver.js';
import {
  checkName, childDirs, killPids, mkdirIfMissing, parseKeyed, parseLimitValue, readFile, readFileIfExists, readPids,
  removeTree, sleepMs, toSystemError, unsupported, writeFile,
} from './fs.js';

/** The v1 controllers dockless uses: five to limit with, cpuacct to account CPU time, freezer to stop forks while killing. */
export const V1_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'cpuset', 'pids', 'blkio', 'freezer'] as const;

/** A v1 controller dockless uses. */
export type V1Controller = (typeof V1_CONTROLLERS)[number];

/** Kernel features a v1 limit may need beyond its controller. @internal */
export interface V1Features {
  /** `memory.memsw.*` exists: swap accounting is on. */
  memsw: boolean;
  /** The proportional weight file: CFQ's `blkio.weight`, BFQ's `blkio.bfq.weight`, or none. */
  blkioWeightFile: 'blkio.weight' | 'blkio.bfq.weight' | null;
}

const maxIfUnlimited = (n: number): string => (n === -1 ? 'max' : String(n));

function throttleWrites(file: string, option: keyof CgroupLimits, list: DeviceRate[] | undefined): CgroupWrite[] {
  // One rule per write: the kernel parses "major:minor rate" and 0 deletes the rule.
  return (list ?? []).map((d) => ({ controller: 'blkio', file, value: `${d.major}:${d.minor} ${d.rate}`, option }));
}

/**
 * The writes that apply `limits` on v1, in a working order. `currentMemoryLimit`
 * (for updates) returns the memory limit now in force, Infinity when unlimited;
 * a fresh cgroup is unlimited.
 * @internal
 */
export function v1LimitWrites(limits: CgroupLimits, features: V1Features, currentMemoryLimit?: () => number): CgroupWrite[] {
  const w: CgroupWrite[] = [];
  const fresh = currentMemoryLimit === undefined;
  const { memory } = limits;
  let swap = limits.memorySwap;
  if (swap !== undefined && !features.memsw) {
    // Unlimited swap is what the kernel does anyway without swap accounting.
    if (swap !== -1) throw unsupported('memorySwap', 'swap accounting (memory.memsw.limit_in_bytes; boot with swapaccount=1)');
    swap = undefined;
  }
  if (features.memsw && swap === undefined && memory !== undefined) {
    // Docker: swap as large as memory by default; lifting memory lifts swap too (runc).
    if (memory === -1) swap = -1;
    else if (fresh) swap = memory * 2;
  }
  const mem: CgroupWrite | undefined = memory === undefined ? undefined : { controller: 'memory', file: 'memory.limit_in_bytes', value: String(memory), option: 'memory' };
  const memsw: CgroupWrite | undefined = swap === undefined ? undefined : { controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: String(swap), option: 'memorySwap' };
  if (mem && memsw) {
    // The kernel keeps limit <= memsw.limit at every step, so raise memsw first
    // when it grows past the current limit, else lower the limit first (runc's order).
    if (swap === -1 || (currentMemoryLimit?.() ?? Infinity) < swap!) w.push(memsw, mem);
    else w.push(mem, memsw);
  } else if (mem) w.push(mem);
  else if (memsw) w.push(memsw);
  if (limits.memoryReservation !== undefined) {
    w.push({ controller: 'memory', file: 'memory.soft_limit_in_bytes', value: String(limits.memoryReservation), option: 'memoryReservation' });
  }

  if (limits.cpuShares !== undefined) w.push({ controller: 'cpu', file: 'cpu.shares', value: String(limits.cpuShares), option: 'cpuShares' });
  if (limits.cpuPeriod !== undefined) w.push({ controller: 'cpu', file: 'cpu.cfs_period_us', value: String(limits.cpuPeriod), option: 'cpuPeriod' });
  if (limits.cpuQuota !== undefined) w.push({ controller: 'cpu', file: 'cpu.cfs_quota_us', value: String(limits.cpuQuota), option: 'cpuQuota' });
  if (limits.cpusetCpus !== undefined) w.push({ controller: 'cpuset', file: 'cpuset.cpus', value: limits.cpusetCpus, option: 'cpusetCpus' });
  if (limits.cpusetMems !== undefined) w.push({ controller: 'cpuset', file: 'cpuset.mems', value: limits.cpusetMems, option: 'cpusetMems' });
  if (limits.pidsLimit !== undefined) w.push({ controller: 'pids', file: 'pids.max', value: maxIfUnlimited(limits.pidsLimit), option: 'pidsLimit' });

  if (limits.blkioWeight !== undefined) {
    if (!features.blkioWeightFile) throw unsupported('blkioWeight', 'a proportional IO scheduler (blkio.weight or blkio.bfq.weight)');
    w.push({ controller: 'blkio', file: features.blkioWeightFile, value: String(limits.blkioWeight), option: 'blkioWeight' });
  }
  w.push(
    ...throttleWrites('blkio.throttle.read_bps_device', 'deviceReadBps', limits.deviceReadBps),
    ...throttleWrites('blkio.throttle.write_bps_device', 'deviceWriteBps', limits.deviceWriteBps),
    ...throttleWrites('blkio.throttle.read_iops_device', 'deviceReadIops', limits.deviceReadIops),
    ...throttleWrites('blkio.throttle.write_iops_device', 'deviceWriteIops', limits.deviceWriteIops),
  );
  return w;
}

/** Options of {@link CgroupV1Driver}. */
export interface CgroupV1Options {
  /** Mount point of each controller (from {@link readCgroupLayout}); missing controllers are skipped. */
  mounts: Partial<Record<V1Controller, string>>;
  /** Parent cgroup name (default `dockless`). */
  parent?: string;
}

/** The cgroup v1 driver. Prefer {@link detectCgroupDriver}, which finds the mounts. */
export class CgroupV1Driver implements CgroupDriver {
  readonly version = 1 as const;
  readonly parent: string;
  /** Controller -> mount point, for the controllers that are mounted. */
  readonly #mounts: ReadonlyMap<V1Controller, string>;
  /** Distinct mount points: co-mounted controllers appear once. */
  readonly #hierarchies: readonly string[];
  #parentReady = false;
  #features: V1Features | undefined;

  constructor(opts: CgroupV1Options) {
    this.parent = opts.parent ?? DEFAULT_CGROUP_PARENT;
    checkName('cgroupParent', this.parent);
    const mounts = new Map<V1Controller, string>();
    for (const c of V1_CONTROLLERS) if (opts.mounts[c] !== undefined) mounts.set(c, opts.mounts[c]);
    this.#mounts = mounts;
    this.#hierarchies = [...new Set(mounts.values())];
  }

  controllers(): string[] {
    return [...this.#mounts.keys()];
  }

  create(id: string, limits: CgroupLimits): Cgroup {
    checkName('id', id);
    this.#ensureParent();
    const writes = v1LimitWrites(limits, this.#getFeatures());
    this.#checkControllers(writes);
    const cg = this.#cgroup(id);
    const made: string[] = [];
    try {
      for (const dir of cg.dirs) {
        try {
          fs.mkdirSync(dir);
        } catch (err) {
          throw toSystemError(err, 'mkdir', dir);
        }
        made.push(dir);
      }
      cg.apply(writes);
    } catch (err) {
      // Nothing was started in it yet: the directories go without a fight.
      for (const dir of made.reverse()) {
        try {
          fs.rmdirSync(dir);
        } catch {
          /* best effort; the error that matters is err */
        }
      }
      throw err;
    }
    return cg;
  }

  open(id: string): Cgroup | null {
    checkName('id', id);
    const cg = this.#cgroup(id);
    return cg.dirs.some((d) => fs.existsSync(d)) ? cg : null;
  }

  list(): string[] {
    const ids = new Set<string>();
    for (const h of this.#hierarchies) for (const name of childDirs(join(h, this.parent))) ids.add(name);
    return [...ids];
  }

  removeParentIfEmpty(): void {
    for (const h of this.#hierarchies) {
      try {
        fs.rmdirSync(join(h, this.parent));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'EBUSY' && code !== 'ENOTEMPTY') throw toSystemError(err, 'rmdir', join(h, this.parent));
      }
    }
    this.#parentReady = false;
  }

  /** @internal Updates share the driver's feature probes and controller checks. */
  checkedWrites(limits: CgroupLimits, currentMemoryLimit: () => number): CgroupWrite[] {
    this.#ensureParent();
    const writes = v1LimitWrites(limits, this.#getFeatures(), currentMemoryLimit);
    this.#checkControllers(writes);
    return writes;
  }

  #cgroup(id: string): V1Cgroup {
    const dirs = new Map<V1Controller, string>();
    for (const [c, m] of this.#mounts) dirs.set(c, join(m, this.parent, id));
    return new V1Cgroup(this, id, dirs);
  }

  #checkControllers(writes: CgroupWrite[]): void {
    for (const w of writes) {
      if (!this.#mounts.has(w.controller as V1Controller)) throw unsupported(w.option, `the ${w.controller} cgroup controller`);
    }
  }

  /**
   * Makes `<mount>/<parent>` in every hierarchy. The cpuset one starts with
   * empty cpus and mems, which would make attaching any process fail, so they
   * are copied from the hierarchy's root; `cgroup.clone_children` then makes
   * the kernel copy them into each container directory as it is made.
   */
  #ensureParent(): void {
    if (this.#parentReady) return;
    for (const h of this.#hierarchies) mkdirIfMissing(join(h, this.parent));
    const cpuset = this.#mounts.get('cpuset');
    if (cpuset !== undefined) {
      const dir = join(cpuset, this.parent);
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        if (readFile(join(dir, file)) === '') writeFile(join(dir, file), readFile(join(cpuset, file)));
      }
      writeFile(join(dir, 'cgroup.clone_children'), '1');
    }
    this.#parentReady = true;
  }

  #getFeatures(): V1Features {
    if (!this.#features) {
      const memory = this.#mounts.get('memory');
      const blkio = this.#mounts.get('blkio');
      // Weight files exist only below the root, hence the look in our parent.
      const inParent = (m: string | undefined, f: string): boolean => m !== undefined && fs.existsSync(join(m, this.parent, f));
      this.#features = {
        memsw: inParent(memory, 'memory.memsw.limit_in_bytes'),
        blkioWeightFile: inParent(blkio, 'blkio.weight') ? 'blkio.weight' : inParent(blkio, 'blkio.bfq.weight') ? 'blkio.bfq.weight' : null,
      };
    }
    return this.#features;
  }
}

/** How long killAll waits for the freezer to report FROZEN before it kills anyway. */
const FREEZE_BUDGET_MS = 100;

class V1Cgroup implements Cgroup {
  /** Distinct directories, one per hierarchy. */
  readonly dirs: string[];

  constructor(
    private readonly driver: CgroupV1Driver,
    readonly id: string,
    /** Controller -> the container's directory in that controller's hierarchy. */
    private readonly byController: ReadonlyMap<V1Controller, string>,
  ) {
    this.dirs = [...new Set(byController.values())];
  }

  placement(): { spec: NativeCgroupPlacement; release(): void } {
    const fds: number[] = [];
    const release = (): void => {
      for (const fd of fds.splice(0)) fs.closeSync(fd);
    };
    try {
      for (const dir of this.dirs) fds.push(fs.openSync(join(dir, 'cgroup.procs'), fs.constants.O_WRONLY));
    } catch (err) {
      release();
      throw toSystemError(err, 'open', `cgroup.procs of ${this.id}`);
    }
    return { spec: { procsFds: [...fds] }, release };
  }

  update(limits: CgroupLimits): void {
    const memDir = this.byController.get('memory');
    const current = (): number => (memDir === undefined ? Infinity : parseLimitValue(readFile(join(memDir, 'memory.limit_in_bytes'))) ?? Infinity);
    this.apply(this.driver.checkedWrites(limits, current));
  }

  /** @internal */
  apply(writes: CgroupWrite[]): void {
    for (const w of writes) writeFile(join(this.byController.get(w.controller as V1Controller)!, w.file), w.value);
  }

  stats(): CgroupStats {
    const stats: CgroupStats = {};
    const read = (c: V1Controller, file: string): string | null => {
      const dir = this.byController.get(c);
      return dir === undefined ? null : readFileIfExists(join(dir, file));
    };
    const usage = read('memory', 'memory.usage_in_bytes');
    if (usage !== null) {
      const stat = parseKeyed(read('memory', 'memory.stat') ?? '');
      stats.memory = {
        usage: Number(usage),
        inactiveFile: stat.get('total_inactive_file') ?? 0,
        limit: parseLimitValue(read('memory', 'memory.limit_in_bytes') ?? 'max'),
        maxUsage: Number(read('memory', 'memory.max_usage_in_bytes') ?? 0),
      };
    }
    const cpuUsage = read('cpuacct', 'cpuacct.usage');
    if (cpuUsage !== null) {
      // cpuacct.usage_user/usage_sys are in ns; cpuacct.stat's ticks are too coarse.
      stats.cpu = { usageNs: Number(cpuUsage), userNs: Number(read('cpuacct', 'cpuacct.usage_user') ?? 0), systemNs: Number(read('cpuacct', 'cpuacct.usage_sys') ?? 0) };
      const cpuStat = read('cpu', 'cpu.stat');
      if (cpuStat !== null) {
        const s = parseKeyed(cpuStat);
        stats.cpu.throttling = { periods: s.get('nr_periods') ?? 0, throttledPeriods: s.get('nr_throttled') ?? 0, throttledNs: s.get('throttled_time') ?? 0 };
      }
    }
    const current = read('pids', 'pids.current');
    if (current !== null) stats.pids = { current: Number(current), limit: parseLimitValue(read('pids', 'pids.max') ?? 'max') };
    return stats;
  }

  oomKilled(): boolean {
    const dir = this.byController.get('memory');
    const text = dir === undefined ? null : readFileIfExists(join(dir, 'memory.oom_control'));
    return (parseKeyed(text ?? '').get('oom_kill') ?? 0) > 0;
  }

  pids(): number[] {
    return readPids(join(this.#primary(), 'cgroup.procs'));
  }

  killAll(): void {
    const freezer = this.byController.get('freezer');
    if (freezer === undefined) return this.#killLoop(this.#primary());
    const state = join(freezer, 'freezer.state');
    try {
      writeFile(state, 'FROZEN');
    } catch (err) {
      if ((err as { errnoName?: string }).errnoName === 'ENOENT') return; // already destroyed
      throw err;
    }
    try {
      // Freezing is asynchronous in v1: FREEZING until every task has stopped.
      const deadline = Date.now() + FREEZE_BUDGET_MS;
      while (readFile(state) !== 'FROZEN' && Date.now() < deadline) sleepMs(1);
      // Frozen tasks cannot fork, so this list is complete; SIGKILL lands once thawed.
      killPids(readPids(join(freezer, 'cgroup.procs')));
    } finally {
      writeFile(state, 'THAWED');
    }
  }

  destroy(): void {
    if (this.pids().length > 0) this.killAll();
    for (const dir of this.dirs) removeTree(dir);
  }

  /** The hierarchy whose cgroup.procs stands for the container's processes: the freezer's, which killAll uses. */
  #primary(): string {
    return this.byController.get('freezer') ?? this.dirs[0]!;
  }

  /** Without a freezer: kill until a look at cgroup.procs finds nobody new (a fork may race each round). */
  #killLoop(dir: string): void {
    const killed = new Set<number>();
    for (let round = 0; round < 100; round++) {
      const fresh = readPids(join(dir, 'cgroup.procs')).filter((p) => !killed.has(p));
      if (fresh.length === 0) return;
      killPids(fresh);
      for (const p of fresh) killed.add(p);
    }
  }
}
