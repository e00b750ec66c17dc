/**
 * Compiles a {@link SeccompProfile} into a classic BPF program for
 * seccomp(SECCOMP_SET_MODE_FILTER), without libseccomp.
 *
 * Shape of the program:
 *
 * 1. `seccomp_data.arch` must be the native ABI, else KILL_PROCESS. Docker also
 *    admits the 32-bit sub-architectures (i386 and x32 on x86_64, arm on aarch64)
 *    with their own syscall numbers; dockless has only native tables, and a
 *    32-bit call judged by the 64-bit numbers would be judged wrongly, so it is
 *    refused. Killing (rather than ENOSYS) makes the cause visible ("Bad system
 *    call", exit 159) where an ENOSYS from every call, `exit` included, would
 *    leave a 32-bit program spinning or crashing obscurely.
 * 2. x86_64: numbers with bit 30 set are the x32 ABI, which reports the same
 *    AUDIT_ARCH; they are killed too, or else they would bypass the list (x32's
 *    `mount` is not 165). Numbers from 2^31 up match no ABI; they get ENOSYS, as
 *    from the kernel.
 * 3. Dispatch on the number through a balanced tree of `jge` over ranges of
 *    numbers with the same outcome: about log2(ranges) jumps per call instead of
 *    a scan of the list.
 * 4. A number with argument conditions gets a small block testing them
 *    (64-bit arguments are compared as two 32-bit halves, as libseccomp does).
 * 5. Numbers above the highest one the profile names get ENOSYS instead of the
 *    default action (what runc does): the profile predates them, and ENOSYS is
 *    what makes libc fall back to an older call (e.g. fchmodat2 -> fchmodat).
 * @module
 */
import { release } from 'node:os';
import { InvalidOptionError } from '../../errors.js';
import { capabilityNumber } from '../capabilities.js';
import { archInfo, type ArchInfo } from './arch.js';
import {
  BackwardEmitter,
  BPF_JEQ,
  BPF_JGE,
  BPF_JGT,
  BPF_MAXINSNS,
  encode,
  type Insn,
  type Label,
  SECCOMP_DATA_ARCH,
  SECCOMP_DATA_ARGS,
  SECCOMP_DATA_NR,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_LOG,
  SECCOMP_RET_TRAP,
} from './bpf.js';
import type { SeccompAction, SeccompArch, SeccompArgCondition, SeccompOp, SeccompProfile, SeccompRule } from './types.js';

const OPTION = 'seccomp';
const ENOSYS = 38;
const MAX_ERRNO = 4095;
const U64_MAX = (1n << 64n) - 1n;

/** Options of {@link compileSeccomp}. */
export interface CompileSeccompOptions {
  /** The architecture the program is for; it refuses every other ABI. */
  arch: SeccompArch;
  /** The container's capability numbers; they decide rules' `includes.caps`/`excludes.caps`. */
  capabilities: readonly number[];
  /** Kernel release for `includes.minKernel` (e.g. `6.1.0-18-amd64`). Default: the running kernel. */
  kernelRelease?: string;
  /**
   * Answer ENOSYS, not the default action, for syscall numbers above the highest
   * number the profile names on this architecture (runc's behaviour). Default true.
   */
  enosysForNewSyscalls?: boolean;
}

/** A rule reduced to what the program tests: conditions (AND) and a return value. */
interface CompiledRule {
  conditions: readonly NormalizedCondition[];
  ret: number;
}

interface NormalizedCondition {
  index: number;
  op: SeccompOp;
  value: bigint;
  mask: bigint;
  width: 32 | 64;
}

/** What happens to one syscall number, or a range of them. */
type Handler = { ret: number } | { rules: readonly CompiledRule[]; fallback: number };

interface Range {
  /** First number of the range; it ends where the next range starts. */
  start: number;
  handler: Handler;
}

/** SECCOMP_RET_* value of an action. */
export function actionValue(action: SeccompAction): number {
  switch (action) {
    case 'allow':
      return SECCOMP_RET_ALLOW;
    case 'kill-process':
      return SECCOMP_RET_KILL_PROCESS;
    case 'kill-thread':
      return SECCOMP_RET_KILL_THREAD;
    case 'trap':
      return SECCOMP_RET_TRAP;
    case 'log':
      return SECCOMP_RET_LOG;
  }
  if (typeof action === 'object' && action !== null && 'errno' in action) {
    const { errno } = action;
    if (!Number.isInteger(errno) || errno < 0 || errno > MAX_ERRNO) {
      throw new InvalidOptionError(OPTION, `errno must be an integer in 0..${MAX_ERRNO}, got ${String(errno)}`);
    }
    return (SECCOMP_RET_ERRNO | errno) >>> 0;
  }
  throw new InvalidOptionError(OPTION, `unknown action ${JSON.stringify(action)}`);
}

function toU64(value: unknown, what: string): bigint {
  let v: bigint;
  if (typeof value === 'bigint') v = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) v = BigInt(value);
  else throw new InvalidOptionError(OPTION, `${what} must be an integer, got ${String(value)}`);
  if (v < 0n || v > U64_MAX) throw new InvalidOptionError(OPTION, `${what} must be in 0..2^64-1, got ${v}`);
  return v;
}

const OPS: readonly SeccompOp[] = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'masked-eq'];

function normalizeCondition(c: SeccompArgCondition): NormalizedCondition {
  if (!Number.isInteger(c.index) || c.index < 0 || c.index > 5) {
    throw new InvalidOptionError(OPTION, `argument index must be 0..5, got ${String(c.index)}`);
  }
  if (!OPS.includes(c.op)) throw new InvalidOptionError(OPTION, `unknown comparison ${JSON.stringify(c.op)}`);
  const width = c.width ?? 64;
  if (width !== 32 && width !== 64) throw new InvalidOptionError(OPTION, `width must be 32 or 64, got ${String(width)}`);
  const value = toU64(c.value, 'an argument value');
  let mask = U64_MAX;
  if (c.op === 'masked-eq') {
    if (c.mask === undefined) throw new InvalidOptionError(OPTION, 'masked-eq needs a mask');
    mask = toU64(c.mask, 'a mask');
  } else if (c.mask !== undefined) {
    throw new InvalidOptionError(OPTION, `a mask is only meaningful with masked-eq, not ${c.op}`);
  }
  if (width === 32 && (value > 0xffffffffn || (c.op === 'masked-eq' && mask > 0xffffffffn))) {
    throw new InvalidOptionError(OPTION, `a 32-bit comparison cannot use a value above 0xffffffff`);
  }
  return { index: c.index, op: c.op, value, mask, width };
}

/** Parses "6.1.0-18-amd64" or "4.8" into [major, minor]. */
function kernelVersion(text: string): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(text);
  if (!m) throw new InvalidOptionError(OPTION, `cannot read kernel version ${JSON.stringify(text)}`);
  return [Number(m[1]), Number(m[2])];
}

function atLeast(have: [number, number], want: [number, number]): boolean {
  return have[0] > want[0] || (have[0] === want[0] && have[1] >= want[1]);
}

function capNumbers(names: readonly string[] | undefined): number[] {
  return (names ?? []).map((name) => {
    const nr = capabilityNumber(name);
    if (nr === undefined) throw new InvalidOptionError(OPTION, `unknown capability ${JSON.stringify(name)} in a rule`);
    return nr;
  });
}

/** Docker's includes/excludes test (moby `profiles/seccomp.setupSeccomp`). */
function applies(rule: SeccompRule, arch: ArchInfo, caps: ReadonlySet<number>, kernel: [number, number]): boolean {
  const inc = rule.includes;
  const exc = rule.excludes;
  if (inc?.arches?.length && !inc.arches.some((a) => arch.names.includes(a))) return false;
  if (inc?.caps?.length && !capNumbers(inc.caps).every((c) => caps.has(c))) return false;
  if (inc?.minKernel && !atLeast(kernel, kernelVersion(inc.minKernel))) return false;
  if (exc?.arches?.length && exc.arches.some((a) => arch.names.includes(a))) return false;
  if (exc?.caps?.length && capNumbers(exc.caps).some((c) => caps.has(c))) return false;
  if (exc?.minKernel && atLeast(kernel, kernelVersion(exc.minKernel))) return false;
  return true;
}

function sameHandler(a: Handler, b: Handler): boolean {
  return 'ret' in a && 'ret' in b && a.ret === b.ret;
}

/** Splits a 64-bit value into its 32-bit halves. */
function halves(v: bigint): { hi: number; lo: number } {
  return { hi: Number(v >> 32n), lo: Number(v & 0xffffffffn) };
}

/** Offset of an argument's low or high word in seccomp_data (both targets are little-endian). */
function argOffset(index: number, high: boolean): number {
  return SECCOMP_DATA_ARGS + index * 8 + (high ? 4 : 0);
}

/**
 * Emits the test of one condition; control goes to `pass` if it holds, else `fail`.
 * The high word decides unless the two are equal, in which case the low word does.
 */
function emitCondition(e: BackwardEmitter, c: NormalizedCondition, pass: Label, fail: Label): Label {
  const v = halves(c.value);
  const m = halves(c.mask);
  // Low half (emitted first: it comes last).
  let low: Label;
  switch (c.op) {
    case 'eq':
      low = e.jump(BPF_JEQ, v.lo, pass, fail);
      break;
    case 'ne':
      low = e.jump(BPF_JEQ, v.lo, fail, pass);
      break;
    case 'masked-eq':
      low = e.jump(BPF_JEQ, v.lo, pass, fail);
      if (m.lo !== 0xffffffff) low = e.and(m.lo);
      break;
    case 'gt':
      low = e.jump(BPF_JGT, v.lo, pass, fail);
      break;
    case 'ge':
      low = e.jump(BPF_JGE, v.lo, pass, fail);
      break;
    case 'lt':
      low = e.jump(BPF_JGE, v.lo, fail, pass);
      break;
    case 'le':
      low = e.jump(BPF_JGT, v.lo, fail, pass);
      break;
  }
  low = e.load(argOffset(c.index, false));
  if (c.width === 32) return low;
  // High half.
  switch (c.op) {
    case 'eq':
      e.jump(BPF_JEQ, v.hi, low, fail);
      break;
    case 'ne':
      e.jump(BPF_JEQ, v.hi, low, pass);
      break;
    case 'masked-eq':
      // A mask with no high bits and a value with none: the high word cannot matter.
      if (m.hi === 0 && v.hi === 0) return low;
      e.jump(BPF_JEQ, v.hi, low, fail);
      if (m.hi !== 0xffffffff) e.and(m.hi);
      break;
    case 'gt':
    case 'ge': {
      const equal = e.jump(BPF_JEQ, v.hi, low, fail);
      e.jump(BPF_JGT, v.hi, pass, equal);
      break;
    }
    case 'lt':
    case 'le': {
      const equal = e.jump(BPF_JEQ, v.hi, low, pass);
      e.jump(BPF_JGT, v.hi, fail, equal);
      break;
    }
  }
  return e.load(argOffset(c.index, true));
}

/** Emits a syscall's rule chain: first rule whose conditions all hold returns its action. */
function emitRules(e: BackwardEmitter, rules: readonly CompiledRule[], fallback: number): Label {
  const rets = new Map<number, Label>();
  const ret = (k: number): Label => {
    let label = rets.get(k);
    if (label === undefined) rets.set(k, (label = e.ret(k)));
    return label;
  };
  let next = ret(fallback);
  for (let i = rules.length - 1; i >= 0; i--) {
    const rule = rules[i]!;
    let pass = ret(rule.ret);
    for (let j = rule.conditions.length - 1; j >= 0; j--) pass = emitCondition(e, rule.conditions[j]!, pass, next);
    next = pass;
  }
  return next;
}

function emitHandler(e: BackwardEmitter, h: Handler): Label {
  return 'ret' in h ? e.ret(h.ret) : emitRules(e, h.rules, h.fallback);
}

/** Emits a binary search over `ranges` (the syscall number is in A). */
function emitTree(e: BackwardEmitter, ranges: readonly Range[], from: number, to: number): Label {
  if (to - from === 1) return emitHandler(e, ranges[from]!.handler);
  const mid = (from + to) >>> 1;
  const upper = emitTree(e, ranges, mid, to);
  const lower = emitTree(e, ranges, from, mid);
  return e.jump(BPF_JGE, ranges[mid]!.start, upper, lower);
}

let hostRelease: string | undefined;

/**
 * Compiles `profile` for one architecture and capability set into a seccomp BPF
 * program: an array of `struct sock_filter` (8 bytes each, little-endian), ready
 * for `seccomp(SECCOMP_SET_MODE_FILTER)` (the addon's `NativeSpawnSpec.seccomp`).
 *
 * Rules apply per Docker's `includes`/`excludes`; syscall names the architecture
 * lacks are skipped; for each syscall the first applicable rule whose argument
 * conditions hold wins, else the default action. See the module comment for the
 * program's shape.
 * @throws InvalidOptionError (option `seccomp`) for a malformed profile or one
 *   whose program would exceed the kernel's 4096 instructions.
 * @throws UnsupportedError for an architecture other than x86_64 and aarch64.
 */
export function compileSeccomp(profile: SeccompProfile, options: CompileSeccompOptions): Uint8Array {
  return encode(compileSeccompInstructions(profile, options));
}

/** {@link compileSeccomp}, returning the instructions rather than their bytes. @internal */
export function compileSeccompInstructions(profile: SeccompProfile, options: CompileSeccompOptions): Insn[] {
  const arch = archInfo(options.arch);
  for (const cap of options.capabilities) {
    if (!Number.isInteger(cap) || cap < 0 || cap > 63) throw new InvalidOptionError(OPTION, `bad capability number ${cap}`);
  }
  const caps = new Set(options.capabilities);
  const kernel = kernelVersion(options.kernelRelease ?? (hostRelease ??= release()));
  const defaultRet = actionValue(profile.defaultAction);
  if (!Array.isArray(profile.rules)) throw new InvalidOptionError(OPTION, 'a profile needs a rules array');

  const bySyscall = new Map<number, CompiledRule[]>();
  let highest = -1;
  for (const rule of profile.rules) {
    if (!Array.isArray(rule.names)) throw new InvalidOptionError(OPTION, 'a rule needs a names array');
    const ret = actionValue(rule.action);
    const conditions = (rule.args ?? []).map(normalizeCondition);
    const active = applies(rule, arch, caps, kernel);
    for (const name of rule.names) {
      if (typeof name !== 'string') throw new InvalidOptionError(OPTION, `syscall names must be strings, got ${typeof name}`);
      const nr = arch.syscalls.get(name);
      if (nr === undefined) continue;
      highest = Math.max(highest, nr);
      if (!active) continue;
      const list = bySyscall.get(nr) ?? [];
      // Rules after an unconditional one can never decide.
      if (!list.some((r) => r.conditions.length === 0)) list.push({ conditions, ret });
      bySyscall.set(nr, list);
    }
  }

  // Rules at the end of a chain that return the default change nothing.
  const handlers = new Map<number, Handler>();
  for (const [nr, list] of bySyscall) {
    const rules = [...list];
    while (rules.length > 0 && rules.at(-1)!.ret === defaultRet) rules.pop();
    if (rules.length === 0) continue;
    handlers.set(nr, rules[0]!.conditions.length === 0 ? { ret: rules[0]!.ret } : { rules, fallback: defaultRet });
  }

  // Partition the number space into ranges, merging neighbours with the same outcome.
  const ranges: Range[] = [];
  const add = (start: number, handler: Handler) => {
    const last = ranges.at(-1);
    if (!last || !sameHandler(last.handler, handler)) ranges.push({ start, handler });
  };
  const numbers = [...handlers.keys()].sort((a, b) => a - b);
  let next = 0;
  for (const nr of numbers) {
    if (nr > next) add(next, { ret: defaultRet });
    add(nr, handlers.get(nr)!);
    next = nr + 1;
  }
  if ((options.enosysForNewSyscalls ?? true) && highest >= 0) {
    if (highest + 1 > next) add(next, { ret: defaultRet });
    add(highest + 1, { ret: (SECCOMP_RET_ERRNO | ENOSYS) >>> 0 });
  } else {
    add(next, { ret: defaultRet });
  }

  const e = new BackwardEmitter();
  // Rare paths go last in the program so the common path falls through.
  const kill = e.ret(SECCOMP_RET_KILL_PROCESS);
  let x32: Label | undefined;
  if (arch.x32Bit !== undefined) {
    const noAbi = e.ret((SECCOMP_RET_ERRNO | ENOSYS) >>> 0);
    x32 = e.jump(BPF_JGE, 0x80000000, noAbi, kill);
  }
  let dispatch = emitTree(e, ranges, 0, ranges.length);
  if (x32 !== undefined) dispatch = e.jump(BPF_JGE, arch.x32Bit!, x32, dispatch);
  const loadNr = e.load(SECCOMP_DATA_NR);
  e.jump(BPF_JEQ, arch.auditArch, loadNr, kill);
  e.load(SECCOMP_DATA_ARCH);

  if (e.length > BPF_MAXINSNS) {
    throw new InvalidOptionError(OPTION, `the profile compiles to ${e.length} BPF instructions, more than the kernel's limit of ${BPF_MAXINSNS}`);
  }
  return e.finish();
}
