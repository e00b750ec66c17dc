/**
 * Docker's resource-limit notations (`--memory 64m`, `--cpus 1.5`,
 * `--memory-swap -1`, `--cpuset-cpus 0-3,5`, `--device-read-bps /dev/sda:1mb`)
 * turned into {@link CgroupLimits}, with Docker's range checks, so a limit the
 * kernel would refuse is reported as an InvalidOptionError naming the option
 * before anything is created.
 * @module
 */

import * as fs from 'node:fs';
import * as os from 'node:os';
import { z } from 'zod';
import { InvalidOptionError } from '../../errors.js';
import { parseOptions } from '../../validate.js';
import type { CgroupLimits, DeviceRate } from './driver.js';

/** A size: bytes as a number, or a string in Docker's notation (`"512k"`, `"64m"`, `"1.5g"`, `"1024b"`, `"64MiB"`). */
export type ByteSize = number | string;

/**
 * A block device throttle as Docker takes it: `"/dev/sda:1mb"`, `{ path, rate }`,
 * or device numbers directly. `rate` is a {@link ByteSize} for the `*Bps`
 * options and a plain count for the `*Iops` options.
 */
export type DeviceRateInput = string | { path: string; rate: number | string } | { major: number; minor: number; rate: number | string };

/** Resource limits in Docker's notation, as `engine.run({ limits })` accepts them. */
export interface LimitsInput {
  /** Memory limit (`--memory`); at least 6 MiB; 0 means unlimited, as does -1. */
  memory?: ByteSize;
  /** Memory plus swap (`--memory-swap`); -1 (or `"-1"`) for unlimited swap; needs `memory`; at least `memory`. */
  memorySwap?: ByteSize;
  /** Soft memory limit (`--memory-reservation`); at least 6 MiB and at most `memory`. */
  memoryReservation?: ByteSize;
  /** Number of CPUs (`--cpus 1.5`): a CFS quota of that many periods of 100 ms. Excludes `cpuQuota` and `cpuPeriod`. */
  cpus?: number | string;
  /** CFS quota in µs (`--cpu-quota`), at least 1000; -1 for unlimited. */
  cpuQuota?: number;
  /** CFS period in µs (`--cpu-period`), 1000..1000000. */
  cpuPeriod?: number;
  /** Relative CPU weight (`--cpu-shares`); clamped to 2..262144 as Docker does; 0 means the default (1024). */
  cpuShares?: number;
  /** CPUs to run on (`--cpuset-cpus`), e.g. `"0-3,5"`; each must exist on the host. */
  cpusetCpus?: string;
  /** Memory nodes to allocate from (`--cpuset-mems`), e.g. `"0"`; each must exist on the host. */
  cpusetMems?: string;
  /** Maximum number of processes (`--pids-limit`); 0 or negative means unlimited. */
  pidsLimit?: number;
  /** Short for `pidsLimit` (give one or the other). */
  pids?: number;
  /** Relative block IO weight (`--blkio-weight`), 10..1000; 0 means the default. */
  blkioWeight?: number;
  /** Read rate limits in bytes per second (`--device-read-bps`). */
  deviceReadBps?: DeviceRateInput[];
  /** Write rate limits in bytes per second (`--device-write-bps`). */
  deviceWriteBps?: DeviceRateInput[];
  /** Read rate limits in IO operations per second (`--device-read-iops`). */
  deviceReadIops?: DeviceRateInput[];
  /** Write rate limits in IO operations per second (`--device-write-iops`). */
  deviceWriteIops?: DeviceRateInput[];
}

/** What {@link parseLimits} checks CPU and memory-node requests against. */
export interface HostCpuInfo {
  /** CPUs this process may use (what `--cpus` is bounded by). */
  cpus: number;
  /** Online CPUs in list format, e.g. `"0-1"`. */
  onlineCpus: string;
  /** Online memory nodes in list format, e.g. `"0"`. */
  onlineMems: string;
}

/** Docker's minimum for `--memory` and `--memory-reservation` (linuxMinMemory). */
export const MIN_MEMORY = 6 * 1024 * 1024;

const deviceRate = z.union([
  z.string(),
  z.strictObject({ path: z.string(), rate: z.union([z.number(), z.string()]) }),
  z.strictObject({ major: z.number().int().min(0), minor: z.number().int().min(0), rate: z.union([z.number(), z.string()]) }),
]);
const size = z.union([z.number(), z.string()]);

/** The shape of {@link LimitsInput}; the value checks are in {@link parseLimits}. @internal */
export const limitsInputSchema = z.strictObject({
  memory: size.optional(),
  memorySwap: size.optional(),
  memoryReservation: size.optional(),
  cpus: z.union([z.number(), z.string()]).optional(),
  cpuQuota: z.number().int().optional(),
  cpuPeriod: z.number().int().optional(),
  cpuShares: z.number().int().optional(),
  cpusetCpus: z.string().optional(),
  cpusetMems: z.string().optional(),
  pidsLimit: z.number().int().optional(),
  pids: z.number().int().optional(),
  blkioWeight: z.number().int().optional(),
  deviceReadBps: z.array(deviceRate).optional(),
  deviceWriteBps: z.array(deviceRate).optional(),
  deviceReadIops: z.array(deviceRate).optional(),
  deviceWriteIops: z.array(deviceRate).optional(),
});

let cachedHost: HostCpuInfo | undefined;

/** The host's CPUs and memory nodes, read once. */
export function hostCpuInfo(): HostCpuInfo {
  if (!cachedHost) {
    const read = (path: string, fallback: string): string => {
      try {
        return fs.readFileSync(path, 'latin1').trim();
      } catch {
        return fallback;
      }
    };
    cachedHost = {
      cpus: os.availableParallelism(),
      onlineCpus: read('/sys/devices/system/cpu/online', `0-${os.cpus().length - 1}`),
      // Without NUMA support the node directory does not exist and node 0 is all there is.
      onlineMems: read('/sys/devices/system/node/online', '0'),
    };
  }
  return cachedHost;
}

// Docker's units.RAMInBytes: binary multiples, optional "i" and "b", case-insensitive.
const SIZE_RE = /^(\d+(?:\.\d+)?) ?([kmgtp])?i?b?$/i;
const MULT: Record<string, number> = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/**
 * Parses a size in Docker's notation (`"64m"`, `"1.5g"`, `"512k"`, `"1024b"`,
 * `"64MiB"`, or a number of bytes). `allowMinusOne` admits -1 / `"-1"` (unlimited).
 */
export function parseByteSize(option: string, value: ByteSize, allowMinusOne = false): number {
  if (allowMinusOne && (value === -1 || value === '-1')) return -1;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidOptionError(option, `${value} is not a size in bytes${allowMinusOne ? ' (or -1 for unlimited)' : ''}`);
    }
    return value;
  }
  const m = SIZE_RE.exec(value.trim());
  if (!m) throw new InvalidOptionError(option, `invalid size ${JSON.stringify(value)} (use e.g. "512k", "64m", "1g" or a number of bytes)`);
  const bytes = Math.trunc(Number(m[1]) * (m[2] ? MULT[m[2].toLowerCase()]! : 1));
  if (!Number.isSafeInteger(bytes)) throw new InvalidOptionError(option, `size ${JSON.stringify(value)} is too large`);
  return bytes;
}

/**
 * Parses a kernel CPU or memory-node list (`"0-3,5"`) into its members, the
 * way Docker's ParseUintList does: ranges ascending, no blanks.
 */
export function parseCpuList(option: string, value: string): Set<number> {
  const out = new Set<number>();
  const bad = (): never => {
    throw new InvalidOptionError(option, `invalid list ${JSON.stringify(value)} (use e.g. "0-3,5")`);
  };
  if (value === '') bad();
  for (const part of value.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) bad();
    const lo = Number(m![1]);
    const hi = m![2] === undefined ? lo : Number(m![2]);
    // The kernel caps CPUs well below this; the bound only stops a huge loop.
    if (hi < lo || hi > 65535) bad();
    for (let i = lo; i <= hi; i++) out.add(i);
  }
  return out;
}

function checkAvailable(option: string, requested: string, available: string): void {
  const have = parseCpuList(option, available);
  for (const n of parseCpuList(option, requested)) {
    if (!have.has(n)) throw new InvalidOptionError(option, `requested ${requested} is not available on this host (available: ${available})`);
  }
}

/** `--cpus` as nano-CPUs, like Docker's ParseCPUs (at most 9 decimals). */
function parseNanoCpus(option: string, value: number | string): number {
  if (typeof value === 'number') {
    // A computed number (0.1 + 0.2) is off by a rounding error; anything finer than 1e-9 CPU is not.
    const nano = Math.round(value * 1e9);
    if (!Number.isFinite(value) || value < 0) throw new InvalidOptionError(option, `${value} is not a number of CPUs`);
    if (Math.abs(value * 1e9 - nano) > 1e-3) throw new InvalidOptionError(option, `${value} is too precise (at most 9 decimals)`);
    return nano;
  }
  const m = /^(\d+)(?:\.(\d+))?$/.exec(value.trim());
  if (!m) throw new InvalidOptionError(option, `${JSON.stringify(value)} is not a number of CPUs`);
  const frac = m[2] ?? '';
  if (frac.replace(/0+$/, '').length > 9) throw new InvalidOptionError(option, `${value} is too precise (at most 9 decimals)`);
  return Number(m[1]) * 1e9 + Number(frac.slice(0, 9).padEnd(9, '0'));
}

function parseDevice(option: string, input: DeviceRateInput, iops: boolean): DeviceRate {
  let path: string | undefined;
  let rateIn: number | string;
  let major: number;
  let minor: number;
  if (typeof input === 'string') {
    const colon = input.lastIndexOf(':');
    if (colon < 0) throw new InvalidOptionError(option, `${JSON.stringify(input)} is not "<device path>:<rate>"`);
    path = input.slice(0, colon);
    rateIn = input.slice(colon + 1);
  } else if ('path' in input) {
    path = input.path;
    rateIn = input.rate;
  } else {
    ({ major, minor } = input);
    rateIn = input.rate;
  }
  if (path !== undefined) {
    if (!path.startsWith('/dev/')) throw new InvalidOptionError(option, `${path} is not a valid device (expected a path under /dev/)`);
    let st: fs.BigIntStats;
    try {
      st = fs.statSync(path, { bigint: true });
    } catch (err) {
      throw new InvalidOptionError(option, `cannot stat ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    if (!st.isBlockDevice()) throw new InvalidOptionError(option, `${path} is not a block device`);
    // glibc's gnu_dev_major / gnu_dev_minor.
    major = Number(((st.rdev >> 8n) & 0xfffn) | ((st.rdev >> 32n) & ~0xfffn));
    minor = Number((st.rdev & 0xffn) | ((st.rdev >> 12n) & ~0xffn));
  }
  let rate: number;
  if (iops) {
    rate = typeof rateIn === 'string' && /^\d+$/.test(rateIn) ? Number(rateIn) : (rateIn as number);
    if (!Number.isSafeInteger(rate) || rate < 0) throw new InvalidOptionError(option, `${JSON.stringify(rateIn)} is not a number of IO operations per second`);
  } else {
    rate = parseByteSize(option, rateIn);
  }
  return { major: major!, minor: minor!, rate };
}

/**
 * Validates limits given in Docker's notations and normalizes them to
 * {@link CgroupLimits}, applying Docker's rules:
 *
 * - sizes take `b`, `k`, `m`, `g`, `t`, `p` (binary multiples) or a number of bytes;
 * - `memory` and `memoryReservation` are at least 6 MiB; `memorySwap` needs
 *   `memory` and is at least as large; -1 means unlimited swap;
 * - `cpus` becomes a quota over a 100 ms period (1.5 → 150000/100000), from
 *   0.01 up to the number of CPUs this process may use, and excludes
 *   `cpuQuota`/`cpuPeriod`; `cpuShares` is clamped to 2..262144;
 * - `cpusetCpus`/`cpusetMems` must name online CPUs / memory nodes;
 * - `pidsLimit` of 0 or less means unlimited;
 * - device throttles are resolved from their path to device numbers.
 *
 * Zero means "not set" wherever Docker says so. Throws InvalidOptionError
 * naming the option (`limits.memory`, …). `prefix` changes that name's first
 * part; `host` replaces the host's CPU facts (for tests).
 */
export function parseLimits(input: LimitsInput, opts: { prefix?: string; host?: HostCpuInfo } = {}): CgroupLimits {
  const prefix = opts.prefix ?? 'limits';
  const p = (k: string): string => `${prefix}.${k}`;
  const inp = parseOptions(limitsInputSchema, input ?? {}, prefix);
  const out: CgroupLimits = {};

  if (inp.memory !== undefined) {
    const memory = parseByteSize(p('memory'), inp.memory, true);
    if (memory > 0 && memory < MIN_MEMORY) throw new InvalidOptionError(p('memory'), `minimum memory limit allowed is 6MB (got ${memory} bytes)`);
    if (memory !== 0) out.memory = memory;
  }
  if (inp.memorySwap !== undefined) {
    const swap = parseByteSize(p('memorySwap'), inp.memorySwap, true);
    if (swap > 0) {
      if (out.memory === undefined || out.memory < 0) {
        throw new InvalidOptionError(p('memorySwap'), 'you should always set the memory limit when using memorySwap');
      }
      if (swap < out.memory) throw new InvalidOptionError(p('memorySwap'), `memory+swap (${swap}) must not be smaller than the memory limit (${out.memory})`);
    }
    if (swap !== 0) out.memorySwap = swap;
  }
  if (inp.memoryReservation !== undefined) {
    const res = parseByteSize(p('memoryReservation'), inp.memoryReservation, true);
    if (res > 0 && res < MIN_MEMORY) throw new InvalidOptionError(p('memoryReservation'), `minimum memory reservation allowed is 6MB (got ${res} bytes)`);
    if (res > 0 && out.memory !== undefined && out.memory > 0 && out.memory < res) {
      throw new InvalidOptionError(p('memoryReservation'), `the memory limit (${out.memory}) can not be less than the memory reservation (${res})`);
    }
    if (res !== 0) out.memoryReservation = res;
  }

  const host = opts.host ?? (inp.cpus !== undefined || inp.cpusetCpus !== undefined || inp.cpusetMems !== undefined ? hostCpuInfo() : undefined);
  if (inp.cpus !== undefined) {
    if (inp.cpuQuota !== undefined) throw new InvalidOptionError(p('cpus'), 'conflicting options: cpus and cpuQuota cannot both be set');
    if (inp.cpuPeriod !== undefined) throw new InvalidOptionError(p('cpus'), 'conflicting options: cpus and cpuPeriod cannot both be set');
    const nano = parseNanoCpus(p('cpus'), inp.cpus);
    const max = host!.cpus;
    if (nano !== 0 && (nano < 1e7 || nano > max * 1e9)) {
      throw new InvalidOptionError(p('cpus'), `range of CPUs is from 0.01 to ${max}.00, as there ${max === 1 ? 'is only 1 CPU' : `are only ${max} CPUs`} available`);
    }
    if (nano !== 0) {
      // Docker: a 100 ms period and the matching share of it (daemon/oci_linux.go).
      out.cpuPeriod = 100_000;
      out.cpuQuota = Math.floor((nano * 100_000) / 1e9);
    }
  }
  if (inp.cpuPeriod !== undefined && inp.cpuPeriod !== 0) {
    if (inp.cpuPeriod < 1000 || inp.cpuPeriod > 1_000_000) {
      throw new InvalidOptionError(p('cpuPeriod'), 'CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
    }
    out.cpuPeriod = inp.cpuPeriod;
  }
  if (inp.cpuQuota !== undefined && inp.cpuQuota !== 0) {
    if (inp.cpuQuota !== -1 && inp.cpuQuota < 1000) {
      throw new InvalidOptionError(p('cpuQuota'), 'CPU cfs quota can not be less than 1ms (i.e. 1000), or -1 for unlimited');
    }
    out.cpuQuota = inp.cpuQuota;
  }
  if (inp.cpuShares !== undefined && inp.cpuShares !== 0) {
    if (inp.cpuShares < 0) throw new InvalidOptionError(p('cpuShares'), `${inp.cpuShares} is negative`);
    // Docker clamps to the kernel's range (with a warning) rather than failing.
    out.cpuShares = Math.min(Math.max(inp.cpuShares, 2), 262_144);
  }
  if (inp.cpusetCpus !== undefined && inp.cpusetCpus !== '') {
    checkAvailable(p('cpusetCpus'), inp.cpusetCpus, host!.onlineCpus);
    out.cpusetCpus = inp.cpusetCpus;
  }
  if (inp.cpusetMems !== undefined && inp.cpusetMems !== '') {
    checkAvailable(p('cpusetMems'), inp.cpusetMems, host!.onlineMems);
    out.cpusetMems = inp.cpusetMems;
  }

  if (inp.pidsLimit !== undefined && inp.pids !== undefined) throw new InvalidOptionError(p('pids'), 'conflicting options: pids and pidsLimit are the same limit; give one');
  const pids = inp.pidsLimit ?? inp.pids;
  if (pids !== undefined) out.pidsLimit = pids > 0 ? pids : -1;
  if (inp.blkioWeight !== undefined && inp.blkioWeight !== 0) {
    if (inp.blkioWeight < 10 || inp.blkioWeight > 1000) throw new InvalidOptionError(p('blkioWeight'), 'range of blkio weight is from 10 to 1000');
    out.blkioWeight = inp.blkioWeight;
  }
  for (const key of ['deviceReadBps', 'deviceWriteBps', 'deviceReadIops', 'deviceWriteIops'] as const) {
    const list = inp[key];
    if (list?.length) out[key] = list.map((d, i) => parseDevice(p(`${key}.${i}`), d, key.endsWith('Iops')));
  }
  return out;
}
