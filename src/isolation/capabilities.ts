/**
 * Linux capabilities: the name table, Docker's default set, and Docker's
 * `--cap-add` / `--cap-drop` rules.
 *
 * Numbers are from <linux/capability.h>; they are the same on every architecture.
 * @module
 */
import { readFileSync } from 'node:fs';
import { InvalidOptionError } from '../errors.js';

/** Every capability Linux defines (up to Linux 6.x), by its `CAP_` name. */
export const CAPABILITIES = Object.freeze({
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_LINUX_IMMUTABLE: 9,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_BROADCAST: 11,
  CAP_NET_ADMIN: 12,
  CAP_NET_RAW: 13,
  CAP_IPC_LOCK: 14,
  CAP_IPC_OWNER: 15,
  CAP_SYS_MODULE: 16,
  CAP_SYS_RAWIO: 17,
  CAP_SYS_CHROOT: 18,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_PACCT: 20,
  CAP_SYS_ADMIN: 21,
  CAP_SYS_BOOT: 22,
  CAP_SYS_NICE: 23,
  CAP_SYS_RESOURCE: 24,
  CAP_SYS_TIME: 25,
  CAP_SYS_TTY_CONFIG: 26,
  CAP_MKNOD: 27,
  CAP_LEASE: 28,
  CAP_AUDIT_WRITE: 29,
  CAP_AUDIT_CONTROL: 30,
  CAP_SETFCAP: 31,
  CAP_MAC_OVERRIDE: 32,
  CAP_MAC_ADMIN: 33,
  CAP_SYSLOG: 34,
  CAP_WAKE_ALARM: 35,
  CAP_BLOCK_SUSPEND: 36,
  CAP_AUDIT_READ: 37,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
  CAP_CHECKPOINT_RESTORE: 40,
} as const);

/** A capability name as the kernel spells it, e.g. `CAP_NET_ADMIN`. */
export type CapabilityName = keyof typeof CAPABILITIES;

/** The highest capability number this table knows (CAP_CHECKPOINT_RESTORE). */
export const CAP_LAST_KNOWN = 40;

/**
 * The capabilities Docker gives a container unless told otherwise (moby's
 * `oci/caps.DefaultCapabilities`), in Docker's order.
 */
export const DEFAULT_CAPABILITIES: readonly CapabilityName[] = Object.freeze([
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
] as const);

const NAMES_BY_NUMBER: readonly CapabilityName[] = (() => {
  const names: CapabilityName[] = [];
  for (const [name, nr] of Object.entries(CAPABILITIES)) names[nr] = name as CapabilityName;
  return names;
})();

/**
 * The number of a capability, given Docker-style: with or without the `CAP_`
 * prefix, in any case (`net_admin`, `CAP_NET_ADMIN`). `undefined` when unknown.
 */
export function capabilityNumber(name: string): number | undefined {
  const upper = name.trim().toUpperCase();
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  return Object.hasOwn(CAPABILITIES, full) ? CAPABILITIES[full as CapabilityName] : undefined;
}

/** The `CAP_` name of a capability number, or `undefined` when the number is unknown. */
export function capabilityName(nr: number): CapabilityName | undefined {
  return NAMES_BY_NUMBER[nr];
}

let lastCap: number | undefined;

/**
 * The highest capability the running kernel supports (/proc/sys/kernel/cap_last_cap,
 * read once), capped at {@link CAP_LAST_KNOWN}. Capabilities above it cannot be
 * granted or dropped (prctl answers EINVAL), so `ALL` means 0..lastCapability().
 */
export function lastCapability(): number {
  if (lastCap === undefined) {
    let value = CAP_LAST_KNOWN;
    try {
      const parsed = Number.parseInt(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'), 10);
      if (Number.isInteger(parsed) && parsed >= 0) value = Math.min(parsed, CAP_LAST_KNOWN);
    } catch {
      // No /proc (unusual): assume a kernel as new as our table.
    }
    lastCap = value;
  }
  return lastCap;
}

/** What {@link resolveCapabilities} takes: Docker's `CapAdd`, `CapDrop` and `Privileged`. */
export interface CapabilityOptions {
  /** Capabilities to add to the default set (`--cap-add`); `ALL` adds every one. */
  add?: readonly string[];
  /** Capabilities to remove from the default set (`--cap-drop`); `ALL` starts from none. */
  drop?: readonly string[];
  /** Docker's `--privileged`: every capability the kernel supports, `add`/`drop` ignored. */
  privileged?: boolean;
}

/** `ALL` (kept as is) or the full `CAP_` name; throws on an unknown name. */
function normalize(names: readonly string[] | undefined, option: 'capAdd' | 'capDrop'): (number | 'ALL')[] {
  const out: (number | 'ALL')[] = [];
  for (const raw of names ?? []) {
    if (typeof raw !== 'string') throw new InvalidOptionError(option, `capability names must be strings, got ${typeof raw}`);
    if (raw.trim().toUpperCase() === 'ALL') {
      out.push('ALL');
      continue;
    }
    const nr = capabilityNumber(raw);
    if (nr === undefined) throw new InvalidOptionError(option, `unknown capability: ${JSON.stringify(raw)}`);
    if (nr > lastCapability()) {
      throw new InvalidOptionError(option, `${capabilityName(nr)} is not supported by this kernel (its last capability is ${lastCapability()})`);
    }
    out.push(nr);
  }
  return out;
}

/**
 * The capability numbers a container gets, following Docker's rules
 * (moby `oci/caps.TweakCapabilities`):
 *
 * - nothing given: Docker's 14 defaults ({@link DEFAULT_CAPABILITIES});
 * - `ALL` in `add`: every capability the kernel supports, minus those in `drop`;
 * - else `ALL` in `drop`: exactly the capabilities in `add`;
 * - else: the defaults, minus `drop`, plus `add`.
 *
 * Names may omit the `CAP_` prefix and are case-insensitive. The result is
 * sorted and free of duplicates.
 * @throws InvalidOptionError (option `capAdd` or `capDrop`) naming an unknown capability.
 */
export function resolveCapabilities(options: CapabilityOptions = {}): number[] {
  const add = normalize(options.add, 'capAdd');
  const drop = normalize(options.drop, 'capDrop');
  const all = Array.from({ length: lastCapability() + 1 }, (_, i) => i);
  let caps: number[];
  if (options.privileged) {
    caps = all;
  } else if (add.includes('ALL')) {
    caps = all.filter((c) => !drop.includes(c));
  } else if (drop.includes('ALL')) {
    caps = add.filter((c): c is number => c !== 'ALL');
  } else {
    const defaults = DEFAULT_CAPABILITIES.map((name) => CAPABILITIES[name]);
    caps = [...defaults.filter((c) => !drop.includes(c)), ...(add as number[])];
  }
  return [...new Set(caps)].sort((a, b) => a - b);
}
