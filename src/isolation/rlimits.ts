/**
 * Resource limits (`setrlimit`) in Docker's `--ulimit` notation.
 *
 * When a container is given no ulimits, Docker passes none to the runtime and the
 * container inherits the limits of the process that starts it (dockerd's, as set by
 * its systemd unit). dockless does the same: {@link parseUlimits} returns `[]`
 * and the container inherits the limits of the Node process. Note that Node raises
 * its own soft RLIMIT_NOFILE to the hard limit at startup, so that is what a
 * container inherits unless `nofile` is given.
 * @module
 */
import { InvalidOptionError } from '../errors.js';

/**
 * The `RLIMIT_*` resources by Docker's lowercase names. The numbers are Linux's
 * generic ones, used by x86_64 and aarch64 alike (MIPS, SPARC and Alpha differ).
 */
export const RLIMITS = Object.freeze({
  cpu: 0,
  fsize: 1,
  data: 2,
  stack: 3,
  core: 4,
  rss: 5,
  nproc: 6,
  nofile: 7,
  memlock: 8,
  as: 9,
  locks: 10,
  sigpending: 11,
  msgqueue: 12,
  nice: 13,
  rtprio: 14,
  rttime: 15,
} as const);

/**
 * A resource name Docker accepts in `--ulimit`, plus `as` (RLIMIT_AS), which Docker's
 * table lacks but the kernel has.
 */
export type RlimitName = keyof typeof RLIMITS;

/**
 * An rlimit ready for setrlimit: the resource as its `RLIMIT_*` number. The same shape
 * as the addon's `NativeRlimit`, which it is passed as.
 */
export interface Rlimit {
  /** The `RLIMIT_*` number, e.g. 7 for RLIMIT_NOFILE. */
  resource: number;
  /** Soft limit; {@link RLIM_INFINITY} (-1) for unlimited. */
  soft: number;
  /** Hard limit; {@link RLIM_INFINITY} (-1) for unlimited. */
  hard: number;
}

/**
 * The value meaning "unlimited" (RLIM_INFINITY) in an {@link Rlimit}: `-1`,
 * as in Docker. The addon casts it to `rlim_t`, where `(rlim_t)-1` is RLIM_INFINITY
 * on every Linux architecture we support.
 */
export const RLIM_INFINITY = -1;

/** One ulimit as an object (Docker's API form `{Name, Soft, Hard}`, lowercased). */
export interface UlimitSpec {
  /** Resource name, e.g. `nofile` (case-insensitive). */
  name: string;
  /** Soft limit; -1 means unlimited. */
  soft: number;
  /** Hard limit; -1 means unlimited. Defaults to `soft`. */
  hard?: number;
}

/** A ulimit in either of Docker's notations: `"nofile=1024:2048"` or `{ name, soft, hard }`. */
export type Ulimit = string | UlimitSpec;

function resourceNumber(name: unknown, option: string): number {
  if (typeof name !== 'string') throw new InvalidOptionError(option, 'a ulimit needs a resource name');
  const key = name.trim().toLowerCase();
  if (!Object.hasOwn(RLIMITS, key)) {
    throw new InvalidOptionError(option, `invalid ulimit type: ${JSON.stringify(name)} (known: ${Object.keys(RLIMITS).join(', ')})`);
  }
  return RLIMITS[key as RlimitName];
}

function limitValue(value: unknown, what: string, option: string): number {
  let n = value;
  if (typeof value === 'string') {
    const text = value.trim();
    // Docker reads these with strconv.ParseInt; "unlimited" is ours, as ulimit(1) spells it.
    n = text === 'unlimited' ? RLIM_INFINITY : /^-?\d+$/.test(text) ? Number(text) : Number.NaN;
  }
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < -1) {
    throw new InvalidOptionError(option, `invalid ${what} limit ${JSON.stringify(value)}: expected a non-negative integer or -1 (unlimited)`);
  }
  return n;
}

/** -1 is the largest value, not the smallest. */
function exceeds(soft: number, hard: number): boolean {
  if (hard === RLIM_INFINITY) return false;
  return soft === RLIM_INFINITY || soft > hard;
}

/**
 * Parses one ulimit. The string form is Docker's `name=soft[:hard]`
 * (`nofile=1024:2048`, `nproc=512` meaning soft = hard = 512); `-1` or
 * `unlimited` is RLIM_INFINITY ({@link RLIM_INFINITY}).
 * @param option The option path named in errors.
 * @throws InvalidOptionError for an unknown resource, a malformed value, or soft > hard.
 */
export function parseUlimit(ulimit: Ulimit, option = 'ulimits'): Rlimit {
  let resource: number;
  let soft: number;
  let hard: number;
  if (typeof ulimit === 'string') {
    const eq = ulimit.indexOf('=');
    if (eq < 0) throw new InvalidOptionError(option, `invalid ulimit argument ${JSON.stringify(ulimit)}: expected name=soft[:hard]`);
    resource = resourceNumber(ulimit.slice(0, eq), option);
    const values = ulimit.slice(eq + 1).split(':');
    if (values.length > 2) {
      throw new InvalidOptionError(option, `too many limit values in ${JSON.stringify(ulimit)}: expected soft[:hard]`);
    }
    soft = limitValue(values[0], 'soft', option);
    hard = values.length === 2 ? limitValue(values[1], 'hard', option) : soft;
  } else if (typeof ulimit === 'object' && ulimit !== null) {
    resource = resourceNumber(ulimit.name, option);
    soft = limitValue(ulimit.soft, 'soft', option);
    hard = ulimit.hard === undefined ? soft : limitValue(ulimit.hard, 'hard', option);
  } else {
    throw new InvalidOptionError(option, `a ulimit is a "name=soft[:hard]" string or a { name, soft, hard } object, got ${typeof ulimit}`);
  }
  if (exceeds(soft, hard)) {
    throw new InvalidOptionError(option, `ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
  }
  return { resource, soft, hard };
}

/**
 * Resolves a container's ulimits into what the addon applies with setrlimit.
 * Nothing given means `[]`: the container inherits the limits of the Node process,
 * as a Docker container inherits dockerd's. A resource given twice takes the later
 * value (as Docker's per-name merge does). The result is sorted by resource number.
 * @param option The option path named in errors.
 * @throws InvalidOptionError see {@link parseUlimit}.
 */
export function parseUlimits(ulimits: readonly Ulimit[] | undefined, option = 'ulimits'): Rlimit[] {
  if (ulimits === undefined) return [];
  if (!Array.isArray(ulimits)) throw new InvalidOptionError(option, 'expected an array of ulimits');
  const byResource = new Map<number, Rlimit>();
  for (const u of ulimits) {
    const limit = parseUlimit(u, option);
    byResource.set(limit.resource, limit);
  }
  return [...byResource.values()].sort((a, b) => a.resource - b.resource);
}
