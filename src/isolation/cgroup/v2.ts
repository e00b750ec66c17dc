/**
 * The cgroup v2 driver: one directory per container, `<mount>/<parent>/<id>`,
 * in the single unified hierarchy.
 *
 * v2's "no internal processes" rule says a cgroup that hands controllers to
 * its children (through `cgroup.subtree_control`) may not hold processes
 * itself, the root excepted. So the parent only ever holds container cgroups,
 * and container cgroups are leaves that hold processes and enable nothing.
 * @module
 */

import * as fs from 'node:fs';
import { join } from 'node:path';
import { InvalidOptionError } from '../../errors.js';
import type { NativeCgroupPlacement } from '../native-types.js';
import { DEFAULT_CGROUP_PARENT, type Cgroup, type CgroupDriver, type CgroupLimits, type CgroupStats, type CgroupWrite, type DeviceRate } from './driver.js';
import {
  checkName, childDirs, killPids, mkdirIfMissing, parseKeyed, parseLimitValue, readFile, readFileIfExists, readPids,
  removeTree, sleepMs, toSystemError, unsupported, writeFile,
} from './fs.js';

/** The v2 controllers dockless enables for container cgroups, when the host has them. */
export const V2_CONTROLLERS = ['cpu', 'cpuset', 'io', 'memory', 'pids'] as const;

/** Kernel features a v2 limit may need beyond its controller. @internal */
export interface V2Features {
  /** `memory.swap.max` exists: swap accounting is on. */
  swap: boolean;
  /** The proportional weight file: BFQ's `io.bfq.weight` (Docker's 10..1000 scale), `io.weight` (1..10000), or none. */
  ioWeightFile: 'io.bfq.weight' | 'io.weight' | null;
}

/**
 * Docker's `--cpu-shares` (2..262144) as a v2 `cpu.weight` (1..10000), by the
 * linear mapping runc and crun use, so 1024 shares become weight 39.
 */
export function cpuSharesToWeight(shares: number): number {
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

/** Docker's `--blkio-weight` (10..1000) as a v2 `io.weight` (1..10000), as runc converts it. */
export function blkioWeightToIoWeight(weight: number): number {
  return 1 + Math.floor(((weight - 10) * 9999) / 990);
}

/**
 * The v2 `memory.swap.max` value for Docker's memory+swap figure: v2 limits swap
 * alone, so it is `memorySwap - memory`; -1 is `max`.
 */
export function memorySwapToV2(memorySwap: number, memory: number): string {
  if (memorySwap === -1) return 'max';
  return String(memorySwap - memory);
}

const maxIfUnlimited = (n: number): string => (n === -1 ? 'max' : String(n));

function ioMax(limits: CgroupLimits): CgroupWrite[] {
  // io.max takes every key of one device in a single line; 'max' lifts a throttle.
  const byDevice = new Map<string, string[]>();
  const add = (key: string, list: DeviceRate[] | undefined): void => {
    for (const d of list ?? []) {
      const dev = `${d.major}:${d.minor}`;
      if (!byDevice.has(dev)) byDevice.set(dev, []);
      byDevice.get(dev)!.push(`${key}=${d.rate === 0 ? 'max' : d.rate}`);
    }
  };
  add('rbps', limits.deviceReadBps);
  add('wbps', limits.deviceWriteBps);
  add('riops', limits.deviceReadIops);
  add('wiops', limits.deviceWriteIops);
  const option = (['deviceReadBps', 'deviceWriteBps', 'deviceReadIops', 'deviceWriteIops'] as const).find((k) => limits[k]?.length)!;
  return [...byDevice].map(([dev, keys]) => ({ controller: 'io', file: 'io.max', value: `${dev} ${keys.join(' ')}`, option }));
}

/**
 * Reads the container's current value of a file, for updates that change one
 * half of a pair (memory+swap, quota+period). @internal
 */
export type CurrentValue = (file: string) => string;

/**
 * The writes that apply `limits` on v2. `current` is given for updates; a
 * fresh cgroup has the kernel's defaults.
 * @internal
 */
export function v2LimitWrites(limits: CgroupLimits, features: V2Features, current?: CurrentValue): CgroupWrite[] {
  const w: CgroupWrite[] = [];
  const { memory } = limits;
  let swap = limits.memorySwap;
  if (swap !== undefined && !features.swap) {
    if (swap !== -1) throw unsupported('memorySwap', 'swap accounting (memory.swap.max)');
    swap = undefined;
  }
  if (features.swap && swap === undefined && memory !== undefined) {
    // Docker: swap as large as memory by default; lifting memory lifts swap too (runc).
    if (memory === -1) swap = -1;
    else if (!current) swap = memory * 2;
  }
  if (memory !== undefined) w.push({ controller: 'memory', file: 'memory.max', value: maxIfUnlimited(memory), option: 'memory' });
  if (swap !== undefined) {
    let value = 'max';
    if (swap !== -1) {
      // v2 limits swap alone, so it needs the memory limit it comes on top of.
      const mem = memory ?? (current ? parseLimitValue(current('memory.max')) : null) ?? -1;
      if (mem === -1) throw new InvalidOptionError('limits.memorySwap', 'set a memory limit to limit memory+swap');
      value = memorySwapToV2(swap, mem);
    }
    w.push({ controller: 'memory', file: 'memory.swap.max', value, option: 'memorySwap' });
  }
  if (limits.memoryReservation !== undefined) {
    // memory.low protects rather than caps; "none" is 0, not max.
    const low = limits.memoryReservation === -1 ? 0 : limits.memoryReservation;
    w.push({ controller: 'memory', file: 'memory.low', value: String(low), option: 'memoryReservation' });
  }

  if (limits.cpuShares !== undefined) {
    w.push({ controller: 'cpu', file: 'cpu.weight', value: String(cpuSharesToWeight(limits.cpuShares)), option: 'cpuShares' });
  }
  if (limits.cpuQuota !== undefined || limits.cpuPeriod !== undefined) {
    // cpu.max is "quota period" in one file: a change to one half keeps the other.
    let quota = limits.cpuQuota === undefined ? undefined : maxIfUnlimited(limits.cpuQuota);
    if (quota === undefined) quota = current ? current('cpu.max').split(' ')[0]! : 'max';
    const value = limits.cpuPeriod === undefined ? quota : `${quota} ${limits.cpuPeriod}`;
    w.push({ controller: 'cpu', file: 'cpu.max', value, option: limits.cpuQuota !== undefined ? 'cpuQuota' : 'cpuPeriod' });
  }
  if (limits.cpusetCpus !== undefined) w.push({ controller: 'cpuset', file: 'cpuset.cpus', value: limits.cpusetCpus, option: 'cpusetCpus' });
  if (limits.cpusetMems !== undefined) w.push({ controller: 'cpuset', file: 'cpuset.mems', value: limits.cpusetMems, option: 'cpusetMems' });
  if (limits.pidsLimit !== undefined) w.push({ controller: 'pids', file: 'pids.max', value: maxIfUnlimited(limits.pidsLimit), option: 'pidsLimit' });

  if (limits.blkioWeight !== undefined) {
    if (!features.ioWeightFile) throw unsupported('blkioWeight', 'a proportional IO controller (io.bfq.weight or io.weight)');
    const value = features.ioWeightFile === 'io.bfq.weight' ? limits.blkioWeight : blkioWeightToIoWeight(limits.blkioWeight);
    w.push({ controller: 'io', file: features.ioWeightFile, value: String(value), option: 'blkioWeight' });
  }
  w.push(...ioMax(limits));
  return w;
}

/** Options of {@link CgroupV2Driver}. */
export interface CgroupV2Options {
  /** Mount point of the cgroup2 hierarchy, e.g. `/sys/fs/cgroup`. */
  mount: string;
  /** Parent cgroup name (default `dockless`). */
  parent?: string;
}

/** The cgroup v2 driver. Prefer {@link detectCgroupDriver}, which finds the mount. */
export class CgroupV2Driver implements CgroupDriver {
  readonly version = 2 as const;
  readonly parent: string;
  readonly #mount: string;
  readonly #parentDir: string;
  /** Controllers enabled in the parent's subtree_control, once the parent is set up. */
  #enabled: ReadonlySet<string> | undefined;
  #features: V2Features | undefined;

  constructor(opts: CgroupV2Options) {
    this.parent = opts.parent ?? DEFAULT_CGROUP_PARENT;
    checkName('cgroupParent', this.parent);
    this.#mount = opts.mount;
    this.#parentDir = join(opts.mount, this.parent);
  }

  controllers(): string[] {
    if (this.#enabled) return [...this.#enabled];
    // Before setup: what the root offers, which is what setup will try to enable.
    const available = new Set(readFile(join(this.#mount, 'cgroup.controllers')).split(' '));
    return V2_CONTROLLERS.filter((c) => available.has(c));
  }

  create(id: string, limits: CgroupLimits): Cgroup {
    checkName('id', id);
    const writes = this.checkedWrites(limits);
    const cg = new V2Cgroup(this, id, join(this.#parentDir, id));
    try {
      fs.mkdirSync(cg.dir);
    } catch (err) {
      throw toSystemError(err, 'mkdir', cg.dir);
    }
    try {
      cg.apply(writes);
    } catch (err) {
      try {
        fs.rmdirSync(cg.dir);
      } catch {
        /* best effort; the error that matters is err */
      }
      throw err;
    }
    return cg;
  }

  open(id: string): Cgroup | null {
    checkName('id', id);
    const dir = join(this.#parentDir, id);
    return fs.existsSync(dir) ? new V2Cgroup(this, id, dir) : null;
  }

  list(): string[] {
    return childDirs(this.#parentDir);
  }

  removeParentIfEmpty(): void {
    try {
      fs.rmdirSync(this.#parentDir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'EBUSY' && code !== 'ENOTEMPTY') throw toSystemError(err, 'rmdir', this.#parentDir);
    }
    this.#enabled = undefined;
  }

  /** @internal The writes for `limits`, after checking their controllers and features. */
  checkedWrites(limits: CgroupLimits, current?: (file: string) => string): CgroupWrite[] {
    const enabled = this.#ensureParent();
    const writes = v2LimitWrites(limits, this.#getFeatures(), current);
    for (const w of writes) {
      if (!enabled.has(w.controller)) throw unsupported(w.option, `the ${w.controller} cgroup controller`);
    }
    return writes;
  }

  /**
   * Makes the parent and hands it every controller dockless uses that the root
   * offers. A controller is enabled in the root's `cgroup.subtree_control` only
   * if it is not already (on systemd hosts they all are); the root is exempt
   * from the no-internal-processes rule, so that works even though processes,
   * perhaps this one, live in it. When the mount's root is not the real root
   * (inside a cgroup namespace) and holds processes, enabling fails with EBUSY:
   * such controllers are left out, and limits needing them raise
   * UnsupportedError. Returns the controllers container cgroups get.
   */
  #ensureParent(): ReadonlySet<string> {
    if (this.#enabled) return this.#enabled;
    const wanted = this.controllers();
    const rootControl = join(this.#mount, 'cgroup.subtree_control');
    const atRoot = new Set(readFile(rootControl).split(' '));
    const missing = wanted.filter((c) => !atRoot.has(c));
    for (const c of enableEach(rootControl, missing)) atRoot.add(c);
    mkdirIfMissing(this.#parentDir);
    const usable = wanted.filter((c) => atRoot.has(c));
    const inParent = new Set(readFile(join(this.#parentDir, 'cgroup.subtree_control')).split(' '));
    const enabled = new Set(usable.filter((c) => inParent.has(c)));
    for (const c of enableEach(join(this.#parentDir, 'cgroup.subtree_control'), usable.filter((c) => !inParent.has(c)))) enabled.add(c);
    this.#enabled = enabled;
    return enabled;
  }

  #getFeatures(): V2Features {
    if (!this.#features) {
      // These files appear in the parent once its own parent (the root) enabled the controller.
      const has = (f: string): boolean => fs.existsSync(join(this.#parentDir, f));
      this.#features = {
        swap: has('memory.swap.max'),
        ioWeightFile: has('io.bfq.weight') ? 'io.bfq.weight' : has('io.weight') ? 'io.weight' : null,
      };
    }
    return this.#features;
  }
}

/**
 * Enables `controllers` in a subtree_control file: all in one write, and if
 * that is refused, one by one so one refusal does not cost the others.
 * Returns those enabled.
 */
function enableEach(file: string, controllers: string[]): string[] {
  if (controllers.length === 0) return [];
  try {
    writeFile(file, controllers.map((c) => `+${c}`).join(' '));
    return controllers;
  } catch {
    return controllers.filter((c) => {
      try {
        writeFile(file, `+${c}`);
        return true;
      } catch {
        return false;
      }
    });
  }
}

/** How long killAll waits for `cgroup.freeze` to take effect before it kills anyway. */
const FREEZE_BUDGET_MS = 100;

class V2Cgroup implements Cgroup {
  constructor(
    private readonly driver: CgroupV2Driver,
    readonly id: string,
    readonly dir: string,
  ) {}

  placement(): { spec: NativeCgroupPlacement; release(): void } {
    let fd: number | undefined;
    try {
      fd = fs.openSync(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
    } catch (err) {
      throw toSystemError(err, 'open', this.dir);
    }
    const release = (): void => {
      if (fd !== undefined) fs.closeSync(fd);
      fd = undefined;
    };
    return { spec: { dirFd: fd }, release };
  }

  update(limits: CgroupLimits): void {
    this.apply(this.driver.checkedWrites(limits, (file) => readFile(join(this.dir, file))));
  }

  /** @internal */
  apply(writes: CgroupWrite[]): void {
    for (const w of writes) writeFile(join(this.dir, w.file), w.value);
  }

  stats(): CgroupStats {
    const stats: CgroupStats = {};
    const read = (file: string): string | null => readFileIfExists(join(this.dir, file));
    const usage = read('memory.current');
    if (usage !== null) {
      const peak = read('memory.peak');
      stats.memory = {
        usage: Number(usage),
        inactiveFile: parseKeyed(read('memory.stat') ?? '').get('inactive_file') ?? 0,
        limit: parseLimitValue(read('memory.max') ?? 'max'),
        ...(peak !== null && { maxUsage: Number(peak) }),
      };
    }
    // cpu.stat is core (always there); the throttling lines come with the cpu controller.
    const cpuStat = read('cpu.stat');
    if (cpuStat !== null) {
      const s = parseKeyed(cpuStat);
      stats.cpu = { usageNs: (s.get('usage_usec') ?? 0) * 1000, userNs: (s.get('user_usec') ?? 0) * 1000, systemNs: (s.get('system_usec') ?? 0) * 1000 };
      if (s.has('nr_periods')) {
        stats.cpu.throttling = { periods: s.get('nr_periods')!, throttledPeriods: s.get('nr_throttled') ?? 0, throttledNs: (s.get('throttled_usec') ?? 0) * 1000 };
      }
    }
    const current = read('pids.current');
    if (current !== null) stats.pids = { current: Number(current), limit: parseLimitValue(read('pids.max') ?? 'max') };
    return stats;
  }

  oomKilled(): boolean {
    return (parseKeyed(readFileIfExists(join(this.dir, 'memory.events')) ?? '').get('oom_kill') ?? 0) > 0;
  }

  pids(): number[] {
    return readPids(join(this.dir, 'cgroup.procs'));
  }

  killAll(): void {
    // cgroup.kill (5.14+) kills the whole subtree atomically, racing no fork.
    const kill = join(this.dir, 'cgroup.kill');
    if (fs.existsSync(kill)) return writeFile(kill, '1');
    if (!fs.existsSync(this.dir)) return;
    const freeze = join(this.dir, 'cgroup.freeze');
    const canFreeze = fs.existsSync(freeze);
    if (canFreeze) {
      writeFile(freeze, '1');
      const deadline = Date.now() + FREEZE_BUDGET_MS;
      while (parseKeyed(readFile(join(this.dir, 'cgroup.events'))).get('frozen') !== 1 && Date.now() < deadline) sleepMs(1);
    }
    try {
      const killed = new Set<number>();
      for (let round = 0; round < 100; round++) {
        const fresh = this.pids().filter((p) => !killed.has(p));
        if (fresh.length === 0) break;
        killPids(fresh);
        for (const p of fresh) killed.add(p);
      }
    } finally {
      if (canFreeze) writeFile(freeze, '0');
    }
  }

  destroy(): void {
    if (this.pids().length > 0) this.killAll();
    removeTree(this.dir);
  }
}
