/**
 * The contract every cgroup driver (v1, v2) keeps, and the normalized limits
 * they apply.
 *
 * A driver owns one parent cgroup (by default `dockless`) directly under the
 * root of each cgroup hierarchy it uses, and creates one child per container
 * below it. It never creates, writes to or removes anything outside that
 * parent, except enabling controllers in the root's `cgroup.subtree_control`
 * on cgroup v2 when they are not enabled there yet.
 *
 * Every method is synchronous: they run on the container start and stop
 * paths, where a few small cgroupfs reads and writes cost less than the
 * promise machinery around them would.
 * @module
 */

import type { NativeCgroupPlacement } from '../native-types.js';

/** The name of the parent cgroup container cgroups are made in, unless told otherwise. */
export const DEFAULT_CGROUP_PARENT = 'dockless';

/** A throttle on one block device, identified by its device numbers. */
export interface DeviceRate {
  major: number;
  minor: number;
  /** Bytes per second (for the `*Bps` lists) or operations per second (`*Iops`); 0 removes the throttle. */
  rate: number;
}

/**
 * Resource limits in the units the kernel takes, with Docker's meanings.
 *
 * Every field is optional: on create an absent field leaves the kernel's
 * default (unlimited), on update it leaves the current value alone. Where a
 * field says `-1`, that value asks for "unlimited" explicitly, which is how an
 * update lifts a limit. Produce these with `parseLimits` (the engine does, from the `limits` option) rather than by
 * hand: it applies Docker's notations, defaults and range checks.
 */
export interface CgroupLimits {
  /** Memory limit in bytes (`docker run --memory`), or -1 for unlimited. */
  memory?: number;
  /**
   * Memory plus swap in bytes (`--memory-swap`), or -1 for unlimited swap.
   * When `memory` is set on create and this is not, swap defaults to the same
   * amount as memory (this field to twice `memory`), as Docker does.
   */
  memorySwap?: number;
  /** Soft limit in bytes (`--memory-reservation`): v1 `memory.soft_limit_in_bytes`, v2 `memory.low`; -1 for none. */
  memoryReservation?: number;
  /** CFS quota in µs per period (`--cpu-quota`, or derived from `--cpus`), or -1 for unlimited. */
  cpuQuota?: number;
  /** CFS period in µs (`--cpu-period`); the kernel's default is 100000. */
  cpuPeriod?: number;
  /**
   * Relative CPU weight in Docker's shares (`--cpu-shares`, 2..262144, 1024 is the default).
   * v1 writes it to `cpu.shares`; v2 converts it to `cpu.weight` as runc and crun do.
   */
  cpuShares?: number;
  /** CPUs the container may run on, in the kernel's list format (`0-3,5`). */
  cpusetCpus?: string;
  /** Memory nodes the container may allocate from, in the kernel's list format. */
  cpusetMems?: string;
  /** Maximum number of processes (`--pids-limit`), or -1 for unlimited. */
  pidsLimit?: number;
  /** Relative block IO weight, 10..1000 (`--blkio-weight`). */
  blkioWeight?: number;
  /** Read throttles in bytes per second (`--device-read-bps`). */
  deviceReadBps?: DeviceRate[];
  /** Write throttles in bytes per second (`--device-write-bps`). */
  deviceWriteBps?: DeviceRate[];
  /** Read throttles in operations per second (`--device-read-iops`). */
  deviceReadIops?: DeviceRate[];
  /** Write throttles in operations per second (`--device-write-iops`). */
  deviceWriteIops?: DeviceRate[];
}

/** Usage numbers of one container cgroup, the raw material of `docker stats`. */
export interface CgroupStats {
  /** Absent when the memory controller is not available. */
  memory?: {
    /** Bytes charged to the cgroup, page cache included (v1 `memory.usage_in_bytes`, v2 `memory.current`). */
    usage: number;
    /** Inactive file cache; `docker stats` shows `usage - inactiveFile` as MEM USAGE. */
    inactiveFile: number;
    /** The limit in bytes, or null when unlimited. */
    limit: number | null;
    /** The highest usage recorded, when the kernel keeps it (v1 always, v2 since 5.19). */
    maxUsage?: number;
  };
  /** Absent on v1 when the cpuacct controller is not available. */
  cpu?: {
    /** Total CPU time consumed, in nanoseconds. */
    usageNs: number;
    /** CPU time spent in user mode, in nanoseconds. */
    userNs: number;
    /** CPU time spent in kernel mode, in nanoseconds. */
    systemNs: number;
    /** CFS bandwidth accounting; absent when the cpu controller is not available. */
    throttling?: {
      /** Enforcement periods that have elapsed. */
      periods: number;
      /** Periods in which the cgroup ran out of quota. */
      throttledPeriods: number;
      /** Total time the cgroup spent throttled, in nanoseconds. */
      throttledNs: number;
    };
  };
  /** Absent when the pids controller is not available. */
  pids?: {
    /** Processes and threads in the cgroup now. */
    current: number;
    /** The limit, or null when unlimited. */
    limit: number | null;
  };
}

/**
 * One write a driver makes to apply a limit, in order: `value` goes to `file`
 * in the container's directory of `controller`'s hierarchy. `option` names the
 * {@link CgroupLimits} field it comes from, for error messages.
 * @internal
 */
export interface CgroupWrite {
  controller: string;
  file: string;
  value: string;
  option: keyof CgroupLimits;
}

/** One container's cgroup (on v1: its directory in each hierarchy). */
export interface Cgroup {
  /** The container id the cgroup is named after. */
  readonly id: string;
  /**
   * Opens what the native spawn needs to start the container's first process
   * inside this cgroup: on v2 an O_DIRECTORY fd for CLONE_INTO_CGROUP, on v1
   * one fd per hierarchy of its `cgroup.procs`, opened for writing, that the
   * child writes "0" into. Call `release()` once the spawn returned, whether it
   * succeeded or not; it closes the fds and is safe to call twice.
   * @internal
   */
  placement(): { spec: NativeCgroupPlacement; release(): void };
  /**
   * Applies `limits` to the running cgroup (`docker update`); absent fields are
   * left alone. A limit whose controller is missing throws UnsupportedError
   * before anything is written.
   */
  update(limits: CgroupLimits): void;
  /** Reads current usage: memory, CPU time and process count, for the controllers available. */
  stats(): CgroupStats;
  /** True if the kernel's OOM killer killed a process in this cgroup since it was created. */
  oomKilled(): boolean;
  /** Pids (thread group ids, host namespace) of the processes in the cgroup now. */
  pids(): number[];
  /**
   * Sends SIGKILL to every process in the cgroup, without waiting for them to
   * exit. v2 uses `cgroup.kill` (Linux 5.14+); otherwise the cgroup is frozen
   * first, when a freezer is available, so nothing can fork while it is being
   * emptied.
   */
  killAll(): void;
  /**
   * Kills whatever is left, then removes the cgroup's directories, retrying
   * briefly while just-killed processes finish exiting. Idempotent: a cgroup
   * that is already gone is not an error.
   */
  destroy(): void;
}

/** Creates and finds container cgroups under dockless's parent cgroup. */
export interface CgroupDriver {
  /** The cgroup version the driver speaks. */
  readonly version: 1 | 2;
  /** The parent cgroup's name, e.g. `dockless`. */
  readonly parent: string;
  /**
   * The controllers limits can be applied with, e.g. `['cpu', 'memory', 'pids']`
   * (v1 names `blkio`, v2 names `io`). A limit needing one not listed throws
   * UnsupportedError.
   */
  controllers(): string[];
  /**
   * Creates the cgroup of container `id` under the parent (setting the parent
   * up on first use) and applies `limits`. Throws UnsupportedError, before
   * creating anything, if a requested limit needs a controller or kernel
   * feature the host lacks; if a write fails, what was created is removed.
   */
  create(id: string, limits: CgroupLimits): Cgroup;
  /** Opens the existing cgroup of container `id` (recovery by a later Engine), or returns null. */
  open(id: string): Cgroup | null;
  /** Ids of the container cgroups that exist under the parent (for crash recovery). */
  list(): string[];
  /** Removes the parent cgroup(s) if no container cgroup is left in them; busy is not an error. */
  removeParentIfEmpty(): void;
}
