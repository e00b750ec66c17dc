/**
 * Reads a seccomp profile in Docker's JSON format (`--security-opt seccomp=profile.json`)
 * into dockless's {@link SeccompProfile}.
 * @module
 */
import { InvalidOptionError } from '../../errors.js';
import type { SeccompAction, SeccompArgCondition, SeccompExcludes, SeccompIncludes, SeccompOp, SeccompProfile, SeccompRule } from './types.js';

const OPTION = 'seccomp';
const EPERM = 1;

const OPS: Record<string, SeccompOp> = {
  SCMP_CMP_EQ: 'eq',
  SCMP_CMP_NE: 'ne',
  SCMP_CMP_LT: 'lt',
  SCMP_CMP_LE: 'le',
  SCMP_CMP_GT: 'gt',
  SCMP_CMP_GE: 'ge',
  SCMP_CMP_MASKED_EQ: 'masked-eq',
};

function fail(message: string): never {
  throw new InvalidOptionError(OPTION, message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringList(v: unknown, what: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) fail(`${what} must be an array of strings`);
  return v as string[];
}

function errnoOf(v: unknown, what: string): number {
  if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 4095) fail(`${what} must be an errno number (0..4095), got ${JSON.stringify(v)}`);
  return v as number;
}

/** Docker's action names; SCMP_ACT_ERRNO without an errno means EPERM (as runc). */
function action(name: unknown, errnoRet: unknown, where: string): SeccompAction {
  switch (name) {
    case 'SCMP_ACT_ALLOW':
      return 'allow';
    case 'SCMP_ACT_ERRNO':
      return { errno: errnoRet === undefined || errnoRet === null ? EPERM : errnoOf(errnoRet, `${where}: errnoRet`) };
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return 'kill-thread';
    case 'SCMP_ACT_KILL_PROCESS':
      return 'kill-process';
    case 'SCMP_ACT_TRAP':
      return 'trap';
    case 'SCMP_ACT_LOG':
      return 'log';
    case 'SCMP_ACT_TRACE':
    case 'SCMP_ACT_NOTIFY':
      return fail(`${where}: ${name} is not supported (it needs a tracer or a seccomp agent)`);
    default:
      return fail(`${where}: unknown action ${JSON.stringify(name)}`);
  }
}

function u64(v: unknown, what: string): number | bigint {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && /^\d+$/.test(v)) {
    const big = BigInt(v);
    if (big < 1n << 64n) return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }
  return fail(`${what} must be an unsigned 64-bit integer, got ${JSON.stringify(v)}`);
}

/** runtime-spec's arg: for SCMP_CMP_MASKED_EQ, `value` is the mask and `valueTwo` the value. */
function condition(arg: unknown, where: string): SeccompArgCondition {
  if (!isObject(arg)) fail(`${where}: each arg must be an object`);
  const op = OPS[String(arg.op)];
  if (!op) fail(`${where}: unknown comparison ${JSON.stringify(arg.op)}`);
  const index = arg.index;
  if (!Number.isInteger(index) || (index as number) < 0 || (index as number) > 5) fail(`${where}: arg index must be 0..5`);
  return op === 'masked-eq'
    ? { index: index as number, op, mask: u64(arg.value, `${where}: value`), value: u64(arg.valueTwo, `${where}: valueTwo`) }
    : { index: index as number, op, value: u64(arg.value, `${where}: value`) };
}

function filter(v: unknown, where: string): (SeccompIncludes & SeccompExcludes) | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) fail(`${where} must be an object`);
  const out: SeccompIncludes & SeccompExcludes = {};
  const arches = stringList(v.arches, `${where}.arches`);
  const caps = stringList(v.caps, `${where}.caps`);
  if (arches) out.arches = arches;
  if (caps) out.caps = caps;
  if (v.minKernel !== undefined && v.minKernel !== null && v.minKernel !== '') {
    if (typeof v.minKernel !== 'string' || !/^\d+\.\d+/.test(v.minKernel)) fail(`${where}.minKernel must look like "4.8"`);
    out.minKernel = v.minKernel;
  }
  return out;
}

/** Unsigned 64-bit literals beyond 2^53 would lose precision in JSON.parse: keep them as strings. */
function parseJson(text: string): unknown {
  const quoted = text.replace(/("(?:value|valueTwo)"\s*:\s*)(\d{16,})/g, '$1"$2"');
  try {
    return JSON.parse(quoted);
  } catch (err) {
    return fail(`not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Converts a Docker seccomp profile (the JSON text, or the parsed object) into a
 * {@link SeccompProfile}, keeping Docker's semantics:
 *
 * - `names` (or the legacy `name`), `action`, `errnoRet`, `args`, `includes`, `excludes`;
 * - a rule whose `args` name the same argument index twice becomes one rule per
 *   condition (OR), as runc does; otherwise all conditions must hold (AND);
 * - `architectures`, `archMap`, `flags` and listener fields are ignored: dockless
 *   always filters the host's native ABI only.
 * @throws InvalidOptionError (option `seccomp`) for malformed input or an action that
 *   needs a tracer or agent (SCMP_ACT_TRACE, SCMP_ACT_NOTIFY).
 */
export function parseDockerSeccompProfile(input: string | unknown): SeccompProfile {
  const json = typeof input === 'string' ? parseJson(input) : input;
  if (!isObject(json)) fail('a seccomp profile must be a JSON object');
  const defaultAction = action(json.defaultAction, json.defaultErrnoRet, 'defaultAction');
  const syscalls = json.syscalls ?? [];
  if (!Array.isArray(syscalls)) fail('syscalls must be an array');
  const rules: SeccompRule[] = [];
  syscalls.forEach((entry: unknown, i: number) => {
    const where = `syscalls[${i}]`;
    if (!isObject(entry)) fail(`${where} must be an object`);
    const names = stringList(entry.names, `${where}.names`) ?? [];
    if (typeof entry.name === 'string' && entry.name !== '') names.push(entry.name);
    if (names.length === 0) fail(`${where} names no system call`);
    const ruleAction = action(entry.action, entry.errnoRet, where);
    if (entry.args !== undefined && entry.args !== null && !Array.isArray(entry.args)) fail(`${where}.args must be an array`);
    const args = ((entry.args ?? []) as unknown[]).map((a, j) => condition(a, `${where}.args[${j}]`));
    const includes = filter(entry.includes, `${where}.includes`);
    const excludes = filter(entry.excludes, `${where}.excludes`);
    const base: SeccompRule = {
      names,
      action: ruleAction,
      ...(includes ? { includes } : {}),
      ...(excludes ? { excludes } : {}),
      ...(typeof entry.comment === 'string' && entry.comment ? { comment: entry.comment } : {}),
    };
    const indexes = args.map((a) => a.index);
    if (new Set(indexes).size !== indexes.length) {
      for (const arg of args) rules.push({ ...base, args: [arg] });
    } else {
      rules.push(args.length ? { ...base, args } : base);
    }
  });
  return { defaultAction, rules };
}
