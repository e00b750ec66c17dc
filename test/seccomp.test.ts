/**
 * Seccomp: the compiler's programs are loaded into the real kernel by a small C
 * harness (test/fixtures/seccomp-harness.c) and probed with real system calls.
 * A BPF interpreter (below) adds exhaustive checks the kernel cannot give
 * cheaply: every syscall number, the aarch64 program, the long-jump trampolines.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../src/errors.js';
import { CAPABILITIES, DEFAULT_CAPABILITIES, resolveCapabilities } from '../src/isolation/capabilities.js';
import {
  compileSeccomp,
  DEFAULT_SECCOMP_PROFILE,
  defaultSeccompProgram,
  hostSeccompArch,
  parseDockerSeccompProfile,
  syscallNumber,
  type SeccompArch,
  type SeccompProfile,
  type SeccompRule,
} from '../src/isolation/seccomp/index.js';
import {
  BPF_MAXINSNS,
  decode,
  disassemble,
  type Insn,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
} from '../src/isolation/seccomp/bpf.js';
import { SYSCALLS_AARCH64 } from '../src/isolation/seccomp/syscalls-aarch64.js';
import { SYSCALLS_X86_64 } from '../src/isolation/seccomp/syscalls-x86_64.js';

const EPERM = 1;
const ENOENT = 2;
const EINVAL = 22;
const ENOSYS = 38;
const AUDIT_ARCH = { x86_64: 0xc000003e, aarch64: 0xc00000b7 } as const;
const TABLES = { x86_64: SYSCALLS_X86_64, aarch64: SYSCALLS_AARCH64 } as const;
const ERRNO = (e: number) => (SECCOMP_RET_ERRNO | e) >>> 0;

const CLONE_NEWNS = 0x20000;
const CLONE_NEWUSER = 0x10000000;
const AF_UNIX = 1;
const AF_VSOCK = 40;

const defaultCaps = resolveCapabilities({});
const host = hostSeccompArch();
const isRoot = process.getuid?.() === 0;

// ---------------------------------------------------------------------------
// A classic BPF interpreter with the kernel's checks (forward jumps inside the
// program, ends in ret), for seccomp_data given as numbers.

interface Call {
  nr: number;
  arch?: number;
  args?: readonly (number | bigint)[];
}

function runBpf(program: readonly Insn[], call: Call, arch: SeccompArch): number {
  const args = Array.from({ length: 6 }, (_, i) => BigInt(call.args?.[i] ?? 0));
  const word = (off: number): number => {
    if (off === 0) return call.nr >>> 0;
    if (off === 4) return (call.arch ?? AUDIT_ARCH[arch]) >>> 0;
    if (off >= 16 && off < 64 && off % 4 === 0) {
      const v = args[(off - 16) >> 3]!;
      return Number((off & 4 ? v >> 32n : v) & 0xffffffffn);
    }
    throw new Error(`bad load offset ${off}`);
  };
  let a = 0;
  let pc = 0;
  for (;;) {
    const insn = program[pc];
    if (!insn) throw new Error(`fell off the program at ${pc}`);
    const { code, jt, jf, k } = insn;
    const jump = (cond: boolean) => (pc += 1 + (cond ? jt : jf));
    switch (code) {
      case 0x20:
        a = word(k);
        pc++;
        break;
      case 0x54:
        a = (a & k) >>> 0;
        pc++;
        break;
      case 0x06:
        return k >>> 0;
      case 0x05:
        pc += 1 + k;
        break;
      case 0x15:
        jump(a === k);
        break;
      case 0x25:
        jump(a > k);
        break;
      case 0x35:
        jump(a >= k);
        break;
      case 0x45:
        jump((a & k) !== 0);
        break;
      default:
        throw new Error(`unexpected opcode 0x${code.toString(16)} at ${pc}`);
    }
  }
}

/** The kernel's static checks on a program (sk_chk_filter): every jump lands inside it, it ends in ret. */
function checkShape(program: readonly Insn[]): void {
  expect(program.length).toBeGreaterThan(0);
  expect(program.length).toBeLessThanOrEqual(BPF_MAXINSNS);
  expect(program.at(-1)!.code).toBe(0x06);
  program.forEach((insn, pc) => {
    if ((insn.code & 0x07) !== 0x05) return;
    const targets = insn.code === 0x05 ? [insn.k] : [insn.jt, insn.jf];
    for (const t of targets) expect(pc + 1 + t, `jump at ${pc}`).toBeLessThan(program.length);
  });
}

// ---------------------------------------------------------------------------
// The straight reading of a profile, as a reference for the compiled program.

const highestCache = new WeakMap<SeccompProfile, Partial<Record<SeccompArch, number>>>();
function highestNumber(profile: SeccompProfile, arch: SeccompArch): number {
  const entry = highestCache.get(profile) ?? {};
  highestCache.set(profile, entry);
  return (entry[arch] ??= Math.max(...profile.rules.flatMap((r) => r.names.map((n) => TABLES[arch][n] ?? -1))));
}

function reference(profile: SeccompProfile, arch: SeccompArch, caps: readonly number[], call: Call): number {
  const info = { names: arch === 'x86_64' ? ['x86_64', 'amd64'] : ['aarch64', 'arm64'] };
  const table = TABLES[arch];
  const nr = call.nr >>> 0;
  if ((call.arch ?? AUDIT_ARCH[arch]) !== AUDIT_ARCH[arch]) return SECCOMP_RET_KILL_PROCESS;
  if (arch === 'x86_64' && nr >= 0x40000000) return nr >= 0x80000000 ? ERRNO(ENOSYS) : SECCOMP_RET_KILL_PROCESS;
  const capNr = (n: string) => CAPABILITIES[n as keyof typeof CAPABILITIES];
  const applies = (r: SeccompRule) =>
    (!r.includes?.arches?.length || r.includes.arches.some((a) => info.names.includes(a))) &&
    (!r.includes?.caps?.length || r.includes.caps.every((c) => caps.includes(capNr(c)))) &&
    !(r.excludes?.arches ?? []).some((a) => info.names.includes(a)) &&
    !(r.excludes?.caps ?? []).some((c) => caps.includes(capNr(c)));
  const highest = highestNumber(profile, arch);
  const args = Array.from({ length: 6 }, (_, i) => BigInt(call.args?.[i] ?? 0));
  for (const rule of profile.rules) {
    if (!applies(rule) || !rule.names.some((n) => table[n] === nr)) continue;
    const holds = (rule.args ?? []).every((c) => {
      const width = c.width === 32 ? 0xffffffffn : (1n << 64n) - 1n;
      const arg = args[c.index]! & width;
      const v = BigInt(c.value);
      switch (c.op) {
        case 'eq': return arg === v;
        case 'ne': return arg !== v;
        case 'lt': return arg < v;
        case 'le': return arg <= v;
        case 'gt': return arg > v;
        case 'ge': return arg >= v;
        case 'masked-eq': return (arg & BigInt(c.mask!)) === v;
      }
    });
    if (holds) return rule.action === 'allow' ? SECCOMP_RET_ALLOW : typeof rule.action === 'object' ? ERRNO(rule.action.errno) : NaN;
  }
  if (nr > highest) return ERRNO(ENOSYS);
  const d = profile.defaultAction;
  return typeof d === 'object' ? ERRNO(d.errno) : d === 'allow' ? SECCOMP_RET_ALLOW : NaN;
}

// ---------------------------------------------------------------------------
// The real kernel, through the harness.

let dir: string;
let harness: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dockless-seccomp-'));
  harness = join(dir, 'seccomp-harness');
  execFileSync('cc', ['-O1', '-Wall', '-o', harness, new URL('./fixtures/seccomp-harness.c', import.meta.url).pathname]);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Outcome {
  ret?: number;
  errno?: number;
  signal: NodeJS.Signals | null;
  stdout: string;
}

let filterCount = 0;

/** Runs one probe under `program` (`null`: no filter, to see what the kernel itself says). */
function probe(program: Uint8Array | null, ...args: (string | number | bigint)[]): Outcome {
  let filter = '-';
  if (program) {
    filter = join(dir, `filter-${filterCount++}.bpf`);
    writeFileSync(filter, program);
  }
  const r = spawnSync(harness, [filter, ...args.map((a) => (typeof a === 'string' ? a : `0x${a.toString(16)}`))], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (r.error) throw r.error;
  if (r.status === 2) throw new Error(`harness failed: ${r.stderr}`);
  const m = /ret=(-?\d+) errno=(\d+)/.exec(r.stdout);
  return { ...(m ? { ret: Number(m[1]), errno: Number(m[2]) } : {}), signal: r.signal, stdout: r.stdout };
}

const refused = (errno: number) => ({ ret: -1, errno, signal: null });
const succeeded = { errno: 0, signal: null };

describe('Docker default profile in the kernel', () => {
  const program = () => defaultSeccompProgram(host, defaultCaps);

  it('is small and well formed', () => {
    const insns = decode(program());
    checkShape(insns);
    expect(insns.length).toBeLessThan(400);
  });

  it('the probes are not refused by the kernel itself (control run)', () => {
    expect(probe(null, 'mount')).toMatchObject(refused(ENOENT));
    expect(probe(null, 'keyctl')).toMatchObject(succeeded);
    expect(probe(null, 'add_key')).toMatchObject(refused(EINVAL));
    expect(probe(null, 'clone3')).toMatchObject(refused(EINVAL));
    expect(probe(null, 'fchmodat2')).toMatchObject(refused(ENOENT));
    expect(probe(null, 'personality', 0x1234)).toMatchObject(succeeded);
    if (isRoot) {
      expect(probe(null, 'reboot')).toMatchObject(refused(EINVAL));
      expect(probe(null, 'unshare', CLONE_NEWNS)).toMatchObject(succeeded);
    }
  });

  it('allows ordinary calls', () => {
    expect(probe(program(), 'getpid')).toMatchObject(succeeded);
    expect(probe(program(), 'getpid').ret).toBeGreaterThan(0);
    expect(probe(program(), 'uname')).toMatchObject({ ret: 0, ...succeeded });
    expect(probe(program(), 'clone', 0)).toMatchObject({ ret: 0, ...succeeded });
    expect(probe(program(), 'personality', 0xffffffff)).toMatchObject(succeeded);
    expect(probe(program(), 'socket', AF_UNIX).ret).toBeGreaterThanOrEqual(0);
    expect(probe(program(), 'chroot')).toMatchObject(refused(ENOENT)); // CAP_SYS_CHROOT is a default
  });

  it('refuses mount, unshare, keyctl, add_key and reboot with EPERM', () => {
    expect(probe(program(), 'mount')).toMatchObject(refused(EPERM));
    expect(probe(program(), 'unshare', CLONE_NEWNS)).toMatchObject(refused(EPERM));
    expect(probe(program(), 'keyctl')).toMatchObject(refused(EPERM));
    expect(probe(program(), 'add_key')).toMatchObject(refused(EPERM));
    expect(probe(program(), 'reboot')).toMatchObject(refused(EPERM));
  });

  it('refuses clone with namespace flags, answers clone3 with ENOSYS', () => {
    expect(probe(program(), 'clone', CLONE_NEWUSER)).toMatchObject(refused(EPERM));
    expect(probe(program(), 'clone', CLONE_NEWNS)).toMatchObject(refused(EPERM));
    expect(probe(program(), 'clone3')).toMatchObject(refused(ENOSYS));
  });

  it('allows only the listed personalities', () => {
    expect(probe(program(), 'personality', 0)).toMatchObject(succeeded);
    expect(probe(program(), 'personality', 0x1234)).toMatchObject(refused(EPERM));
    // The kernel truncates to 0 (see the control run); the filter compares all 64 bits.
    expect(probe(null, 'personality', 0x1_0000_0000n)).toMatchObject(succeeded);
    expect(probe(program(), 'personality', 0x1_0000_0000n)).toMatchObject(refused(EPERM));
  });

  it('refuses AF_VSOCK sockets, also with garbage in the upper half of the register', () => {
    expect(probe(program(), 'socket', AF_VSOCK)).toMatchObject(refused(EPERM));
    expect(probe(program(), 'socket', (1n << 32n) | BigInt(AF_VSOCK))).toMatchObject(refused(EPERM));
  });

  it('answers syscalls newer than the profile with ENOSYS, so libc falls back', () => {
    expect(probe(program(), 'fchmodat2')).toMatchObject(refused(ENOSYS));
  });

  it.runIf(host === 'x86_64')('kills x32 and i386 system calls', () => {
    const getpid = syscallNumber('x86_64', 'getpid')!;
    expect(probe(program(), 'raw', 0x40000000 | getpid)).toMatchObject({ signal: 'SIGSYS' });
    expect(probe(null, 'raw', 0x40000000 | getpid).signal).toBeNull();
    const control = probe(null, 'int80');
    if (control.signal === null && control.ret !== undefined && control.ret > 0) {
      expect(probe(program(), 'int80')).toMatchObject({ signal: 'SIGSYS' });
    }
    expect(probe(program(), 'raw', 0xffffffff)).toMatchObject(refused(ENOSYS));
  });

  it.runIf(isRoot)('with CAP_SYS_ADMIN lets namespace and mount calls through to the kernel', () => {
    const admin = defaultSeccompProgram(host, resolveCapabilities({ add: ['SYS_ADMIN'] }));
    expect(probe(admin, 'unshare', CLONE_NEWNS)).toMatchObject({ ret: 0, ...succeeded });
    expect(probe(admin, 'mount')).toMatchObject(refused(ENOENT));
    expect(probe(admin, 'clone', CLONE_NEWUSER)).toMatchObject({ ret: 0, ...succeeded });
    expect(probe(admin, 'clone3')).toMatchObject(refused(EINVAL));
    // Still not: these need other capabilities or are never allowed.
    expect(probe(admin, 'reboot')).toMatchObject(refused(EPERM));
    expect(probe(admin, 'keyctl')).toMatchObject(refused(EPERM));
  });

  it.runIf(isRoot)('follows the other capability groups (CAP_SYS_BOOT added, CAP_SYS_CHROOT dropped)', () => {
    const boot = defaultSeccompProgram(host, resolveCapabilities({ add: ['CAP_SYS_BOOT'] }));
    expect(probe(boot, 'reboot')).toMatchObject(refused(EINVAL)); // bad magic: reached the kernel
    const noChroot = defaultSeccompProgram(host, resolveCapabilities({ drop: ['SYS_CHROOT'] }));
    expect(probe(noChroot, 'chroot')).toMatchObject(refused(EPERM));
  });

  it('runs real programs: a shell pipeline and a multi-threaded Node', () => {
    const sh = probe(program(), 'exec', '/bin/sh', '-c', 'ls / >/dev/null && cat /proc/self/status | grep -c Seccomp && echo sh-ok');
    expect(sh.signal).toBeNull();
    expect(sh.stdout).toContain('sh-ok');
    const node = probe(program(), 'exec', process.execPath, '-e', 'setTimeout(() => console.log("node-ok", require("os").cpus().length > 0), 5)');
    expect(node.signal).toBeNull();
    expect(node.stdout).toContain('node-ok true');
  });
});

describe('compiler through the kernel', () => {
  const getpid = syscallNumber(host, 'getpid')!;
  /** Allows what the harness needs after installing the filter, plus `rule`. */
  const withRule = (rule: SeccompRule): SeccompProfile => ({
    defaultAction: { errno: EPERM },
    rules: [{ names: ['write', 'exit', 'exit_group'], action: 'allow' }, rule],
  });

  it('compares 64-bit arguments as two halves (personality only for 0)', () => {
    const program = compileSeccomp(withRule({ names: ['personality'], action: 'allow', args: [{ index: 0, op: 'eq', value: 0 }] }), {
      arch: host,
      capabilities: [],
    });
    expect(probe(program, 'personality', 0)).toMatchObject(succeeded);
    expect(probe(program, 'personality', 8)).toMatchObject(refused(EPERM));
    expect(probe(program, 'personality', 0x1_0000_0000n)).toMatchObject(refused(EPERM));
  });

  // getpid ignores its arguments, so only the filter decides.
  const cases: [SeccompRule['args'], (bigint | number)[], (bigint | number)[]][] = [
    [[{ index: 0, op: 'gt', value: 0x1_0000_0005n }], [0x1_0000_0006n, 0x2_0000_0000n], [0x1_0000_0005n, 0xffff_ffffn, 5]],
    [[{ index: 1, op: 'ge', value: 0x1_0000_0005n }], [0x1_0000_0005n, 0x2_0000_0000n], [0x1_0000_0004n, 0xffff_ffffn]],
    [[{ index: 2, op: 'lt', value: 0x1_0000_0005n }], [0x1_0000_0004n, 0xffff_ffffn, 0], [0x1_0000_0005n, 0x2_0000_0000n]],
    [[{ index: 3, op: 'le', value: 0x1_0000_0005n }], [0x1_0000_0005n, 7], [0x1_0000_0006n, 0x2_0000_0000n]],
    [[{ index: 4, op: 'ne', value: 0x1_0000_0005n }], [5, 0x2_0000_0005n, 0x1_0000_0006n], [0x1_0000_0005n]],
    [[{ index: 5, op: 'masked-eq', mask: 0xff00_0000_00ffn, value: 0x1200_0000_0034n }], [0x12ab_cdef_5634n, 0x1200_0000_0034n], [0x1300_0000_0034n, 0x1200_0000_0035n, 0xff12_0000_ff34n]],
    [[{ index: 0, op: 'ne', value: 40, width: 32 }], [41, 0x1_0000_0029n], [40, 0x1_0000_0028n]],
    [
      [
        { index: 0, op: 'ge', value: 10 },
        { index: 0, op: 'lt', value: 20 },
      ],
      [10, 19],
      [9, 20, 0x1_0000_000an],
    ],
  ];

  it.each(cases.map((c, i) => [i, ...c] as const))('comparison case %i', (_i, args, pass, fail) => {
    const program = compileSeccomp(withRule({ names: ['getpid'], action: 'allow', args: args! }), { arch: host, capabilities: [] });
    const at = (v: bigint | number) => {
      const index = args![0]!.index;
      return Array.from({ length: index + 1 }, (_, i) => (i === index ? v : 0));
    };
    for (const v of pass) expect(probe(program, 'raw', getpid, ...at(v)), `0x${v.toString(16)}`).toMatchObject(succeeded);
    for (const v of fail) expect(probe(program, 'raw', getpid, ...at(v)), `0x${v.toString(16)}`).toMatchObject(refused(EPERM));
  });

  it('keeps far jumps in range with trampolines (a huge conditional allowlist)', () => {
    const profile = hugeProfile(host);
    const insns = decode(compileSeccomp(profile, { arch: host, capabilities: [] }));
    checkShape(insns);
    expect(insns.length).toBeGreaterThan(1500);
    expect(insns.some((i) => i.code === 0x05)).toBe(true); // at least one ja trampoline
    const program = compileSeccomp(profile, { arch: host, capabilities: [] });
    const key = hugeKey(getpid);
    expect(probe(program, 'raw', getpid, key)).toMatchObject(succeeded);
    expect(probe(program, 'raw', getpid, key + 1n)).toMatchObject(refused(EPERM));
    const uname = syscallNumber(host, 'uname')!;
    expect(probe(program, 'raw', uname, 0)).toMatchObject(refused(EPERM));
  });
});

/** Every syscall but the harness's own allowed only when arg0 equals a per-syscall 64-bit key. */
function hugeKey(nr: number): bigint {
  return (BigInt(nr) << 33n) | 0x5a5an;
}
function hugeProfile(arch: SeccompArch): SeccompProfile {
  const needed = new Set(['write', 'exit', 'exit_group']);
  const names = Object.keys(TABLES[arch]).filter((n) => !needed.has(n));
  return {
    defaultAction: { errno: EPERM },
    rules: [
      { names: [...needed], action: 'allow' },
      ...names.map((n) => ({
        names: [n],
        action: 'allow' as const,
        args: [{ index: 0, op: 'eq' as const, value: hugeKey(TABLES[arch][n]!) }],
      })),
    ],
  };
}

describe('compiler (interpreted)', () => {
  const arches: SeccompArch[] = ['x86_64', 'aarch64'];

  it.each(arches)('%s: the default program matches the profile for every syscall number', (arch) => {
    for (const caps of [defaultCaps, resolveCapabilities({ add: ['ALL'] }), resolveCapabilities({ drop: ['ALL'] })]) {
      const insns = decode(compileSeccomp(DEFAULT_SECCOMP_PROFILE, { arch, capabilities: caps }));
      checkShape(insns);
      const argSets: bigint[][] = [[], [0x7e020000n], [40n], [0xffffffffn], [8n], [0x1_0000_0028n], [0x20008n]];
      for (let nr = 0; nr < 1100; nr++) {
        for (const args of argSets) {
          const call = { nr, args };
          expect(runBpf(insns, call, arch), `${arch} nr ${nr} args ${args}`).toBe(reference(DEFAULT_SECCOMP_PROFILE, arch, caps, call));
        }
      }
      for (const nr of [0x3fffffff, 0x40000000, 0x40000027, 0x7fffffff, 0x80000000, 0xffffffff]) {
        expect(runBpf(insns, { nr }, arch), `${arch} nr 0x${nr.toString(16)}`).toBe(reference(DEFAULT_SECCOMP_PROFILE, arch, caps, { nr }));
      }
    }
  });

  it.each(arches)('%s: a foreign architecture is killed', (arch) => {
    const insns = decode(defaultSeccompProgram(arch, defaultCaps));
    const other = arch === 'x86_64' ? AUDIT_ARCH.aarch64 : AUDIT_ARCH.x86_64;
    expect(runBpf(insns, { nr: 0, arch: other }, arch)).toBe(SECCOMP_RET_KILL_PROCESS);
    expect(runBpf(insns, { nr: 0, arch: 0x40000003 /* AUDIT_ARCH_I386 */ }, arch)).toBe(SECCOMP_RET_KILL_PROCESS);
  });

  it('aarch64: spot checks against its own numbers', () => {
    const insns = decode(defaultSeccompProgram('aarch64', defaultCaps));
    const nr = (n: string) => syscallNumber('aarch64', n)!;
    expect(nr('getpid')).toBe(172);
    expect(syscallNumber('aarch64', 'open')).toBeUndefined();
    expect(runBpf(insns, { nr: nr('openat') }, 'aarch64')).toBe(SECCOMP_RET_ALLOW);
    expect(runBpf(insns, { nr: nr('mount') }, 'aarch64')).toBe(ERRNO(EPERM));
    expect(runBpf(insns, { nr: nr('clone3') }, 'aarch64')).toBe(ERRNO(ENOSYS));
    expect(runBpf(insns, { nr: nr('clone'), args: [0x11] }, 'aarch64')).toBe(SECCOMP_RET_ALLOW);
    expect(runBpf(insns, { nr: nr('clone'), args: [CLONE_NEWUSER | 0x11] }, 'aarch64')).toBe(ERRNO(EPERM));
    expect(runBpf(insns, { nr: nr('socket'), args: [AF_VSOCK] }, 'aarch64')).toBe(ERRNO(EPERM));
    expect(syscallNumber('aarch64', 'cacheflush')).toBeUndefined(); // arm32 only: skipped
    expect(runBpf(insns, { nr: 0x40000000 | nr('mount') }, 'aarch64')).toBe(ERRNO(ENOSYS));
  });

  it('the huge allowlist decides every number right', () => {
    for (const arch of arches) {
      const profile = hugeProfile(arch);
      const insns = decode(compileSeccomp(profile, { arch, capabilities: [] }));
      checkShape(insns);
      for (const [name, nr] of Object.entries(TABLES[arch])) {
        const needed = ['write', 'exit', 'exit_group'].includes(name);
        expect(runBpf(insns, { nr, args: [hugeKey(nr)] }, arch)).toBe(SECCOMP_RET_ALLOW);
        expect(runBpf(insns, { nr, args: [hugeKey(nr) ^ (1n << 40n)] }, arch)).toBe(needed ? SECCOMP_RET_ALLOW : ERRNO(EPERM));
        expect(runBpf(insns, { nr, args: [hugeKey(nr) ^ 1n] }, arch)).toBe(needed ? SECCOMP_RET_ALLOW : ERRNO(EPERM));
      }
    }
  });

  it('refuses a program longer than BPF_MAXINSNS', () => {
    const names = Object.keys(SYSCALLS_X86_64);
    const profile: SeccompProfile = {
      defaultAction: { errno: EPERM },
      rules: Array.from({ length: 8 }, (_, k) => ({
        names,
        action: 'allow' as const,
        args: [{ index: 0, op: 'eq' as const, value: 0x1_0000_0000n + BigInt(k) }],
      })),
    };
    expect(() => compileSeccomp(profile, { arch: 'x86_64', capabilities: [] })).toThrow(InvalidOptionError);
    expect(() => compileSeccomp(profile, { arch: 'x86_64', capabilities: [] })).toThrow(/4096/);
  });

  it('rejects malformed profiles with InvalidOptionError', () => {
    const bad = (rule: Partial<SeccompRule>) => () =>
      compileSeccomp({ defaultAction: 'allow', rules: [{ names: ['getpid'], action: 'allow', ...rule } as SeccompRule] }, { arch: 'x86_64', capabilities: [] });
    expect(bad({ action: { errno: 5000 } })).toThrow(InvalidOptionError);
    expect(bad({ args: [{ index: 6, op: 'eq', value: 0 }] })).toThrow(/index/);
    expect(bad({ args: [{ index: 0, op: 'eq', value: -1 }] })).toThrow(InvalidOptionError);
    expect(bad({ args: [{ index: 0, op: 'masked-eq', value: 0 }] })).toThrow(/mask/);
    expect(bad({ includes: { caps: ['CAP_NOPE'] } })).toThrow(/CAP_NOPE/);
    expect(() => compileSeccomp(DEFAULT_SECCOMP_PROFILE, { arch: 'mips' as SeccompArch, capabilities: [] })).toThrow(/mips/);
  });

  it('skips names the architecture lacks, and honours minKernel', () => {
    const profile: SeccompProfile = {
      defaultAction: { errno: EPERM },
      rules: [
        { names: ['no_such_call', 'open'], action: 'allow' },
        { names: ['getpid'], action: 'allow', includes: { minKernel: '99.0' } },
      ],
    };
    const x86 = decode(compileSeccomp(profile, { arch: 'x86_64', capabilities: [] }));
    expect(runBpf(x86, { nr: SYSCALLS_X86_64.open! }, 'x86_64')).toBe(SECCOMP_RET_ALLOW);
    expect(runBpf(x86, { nr: SYSCALLS_X86_64.getpid! }, 'x86_64')).toBe(ERRNO(EPERM));
    const old = decode(compileSeccomp(profile, { arch: 'x86_64', capabilities: [], kernelRelease: '100.1.0' }));
    expect(runBpf(old, { nr: SYSCALLS_X86_64.getpid! }, 'x86_64')).toBe(SECCOMP_RET_ALLOW);
    expect(() => compileSeccomp(profile, { arch: 'aarch64', capabilities: [] })).not.toThrow();
  });

  it('prints a readable disassembly', () => {
    const text = disassemble(decode(defaultSeccompProgram('x86_64', defaultCaps)));
    expect(text[0]).toBe('0000: ld [4]');
    expect(text[1]).toMatch(/^0001: jeq 0xc000003e \? 0002 : \d{4}$/);
    expect(text.some((l) => l.endsWith('ret ERRNO(38)'))).toBe(true);
  });
});

describe('defaultSeccompProgram cache', () => {
  it('compiles once per relevant capability set and hands out copies', () => {
    const a = defaultSeccompProgram('x86_64', defaultCaps);
    const b = defaultSeccompProgram('x86_64', [...defaultCaps, CAPABILITIES.CAP_NET_ADMIN]); // irrelevant to the profile
    expect(b).toEqual(a);
    expect(b).not.toBe(a);
    a.fill(0);
    expect(defaultSeccompProgram('x86_64', defaultCaps)).toEqual(b);
    const admin = defaultSeccompProgram('x86_64', [...defaultCaps, CAPABILITIES.CAP_SYS_ADMIN]);
    expect(admin).not.toEqual(b);
  });

  it('is cheap once warm', () => {
    defaultSeccompProgram(host, defaultCaps);
    const start = performance.now();
    for (let i = 0; i < 1000; i++) defaultSeccompProgram(host, defaultCaps);
    expect((performance.now() - start) / 1000).toBeLessThan(0.5);
  });

  it('the default profile is frozen', () => {
    expect(Object.isFrozen(DEFAULT_SECCOMP_PROFILE.rules[0]!.names)).toBe(true);
    expect(DEFAULT_CAPABILITIES).toHaveLength(14);
  });
});

describe('parseDockerSeccompProfile', () => {
  it('reads Docker JSON, with its errno, masked-eq and same-index OR rules', () => {
    const text = `{
      "defaultAction": "SCMP_ACT_ERRNO",
      "defaultErrnoRet": 1,
      "architectures": ["SCMP_ARCH_X86_64"],
      "syscalls": [
        { "names": ["write", "exit", "exit_group"], "action": "SCMP_ACT_ALLOW" },
        { "names": ["getpid"], "action": "SCMP_ACT_ALLOW",
          "args": [{ "index": 0, "value": 5, "op": "SCMP_CMP_EQ" }, { "index": 0, "value": 18446744073709551615, "op": "SCMP_CMP_EQ" }] },
        { "name": "clone", "action": "SCMP_ACT_ALLOW", "args": [{ "index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ" }] },
        { "names": ["uname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": { "caps": ["CAP_SYS_ADMIN"] } }
      ]
    }`;
    const profile = parseDockerSeccompProfile(text);
    expect(profile.defaultAction).toEqual({ errno: 1 });
    expect(profile.rules).toHaveLength(5); // getpid's two same-index conditions became two rules
    expect(profile.rules[2]!.args).toEqual([{ index: 0, op: 'eq', value: 18446744073709551615n }]);
    expect(profile.rules[3]!.args).toEqual([{ index: 0, op: 'masked-eq', mask: 0x7e020000, value: 0 }]);
    const insns = decode(compileSeccomp(profile, { arch: 'x86_64', capabilities: [] }));
    const getpid = SYSCALLS_X86_64.getpid!;
    expect(runBpf(insns, { nr: getpid, args: [5] }, 'x86_64')).toBe(SECCOMP_RET_ALLOW);
    expect(runBpf(insns, { nr: getpid, args: [(1n << 64n) - 1n] }, 'x86_64')).toBe(SECCOMP_RET_ALLOW);
    expect(runBpf(insns, { nr: getpid, args: [6] }, 'x86_64')).toBe(ERRNO(EPERM));
    expect(runBpf(insns, { nr: SYSCALLS_X86_64.uname! }, 'x86_64')).toBe(ERRNO(ENOSYS));
  });

  it('rejects what dockless cannot honour or does not understand', () => {
    expect(() => parseDockerSeccompProfile('{"defaultAction":"SCMP_ACT_TRACE"}')).toThrow(/not supported/);
    expect(() => parseDockerSeccompProfile('{"defaultAction":"SCMP_ACT_NOPE"}')).toThrow(InvalidOptionError);
    expect(() => parseDockerSeccompProfile('{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_SOMETIMES"}]}]}')).toThrow(/SOMETIMES/);
    expect(() => parseDockerSeccompProfile('not json')).toThrow(InvalidOptionError);
    expect(() => parseDockerSeccompProfile({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ action: 'SCMP_ACT_ALLOW' }] })).toThrow(/names no system call/);
  });
});
