/**
 * What the filter needs to know about each target architecture.
 * @internal
 * @module
 */
import { UnsupportedError } from '../../errors.js';
import { SYSCALLS_AARCH64 } from './syscalls-aarch64.js';
import { SYSCALLS_X86_64 } from './syscalls-x86_64.js';
import type { SeccompArch } from './types.js';

/** Per-architecture facts. */
export interface ArchInfo {
  /** seccomp_data.arch for the native ABI (AUDIT_ARCH_*). */
  auditArch: number;
  /** Names Docker profiles use for this architecture in `includes.arches`. */
  names: readonly string[];
  /** Syscall name -> number. A Map, so names like `constructor` cannot hit Object.prototype. */
  syscalls: ReadonlyMap<string, number>;
  /**
   * x86_64 only: system call numbers with this bit set are the x32 ABI, which
   * shares AUDIT_ARCH_X86_64 and so would get past the architecture check.
   */
  x32Bit?: number;
}

const ARCHES: Record<SeccompArch, ArchInfo> = {
  x86_64: {
    auditArch: 0xc000003e, // AUDIT_ARCH_X86_64: EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
    names: ['x86_64', 'amd64'],
    syscalls: new Map(Object.entries(SYSCALLS_X86_64)),
    x32Bit: 0x40000000,
  },
  aarch64: {
    auditArch: 0xc00000b7, // AUDIT_ARCH_AARCH64: EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
    names: ['aarch64', 'arm64'],
    syscalls: new Map(Object.entries(SYSCALLS_AARCH64)),
  },
};

/** Facts about `arch`; throws UnsupportedError for anything else. */
export function archInfo(arch: SeccompArch): ArchInfo {
  const info = Object.hasOwn(ARCHES, arch) ? ARCHES[arch] : undefined;
  if (!info) throw new UnsupportedError(`seccomp: unsupported architecture ${JSON.stringify(arch)}`);
  return info;
}

/**
 * The seccomp architecture of this Node process (`x86_64` or `aarch64`).
 * @throws UnsupportedError on any other architecture.
 */
export function hostSeccompArch(): SeccompArch {
  switch (process.arch) {
    case 'x64':
      return 'x86_64';
    case 'arm64':
      return 'aarch64';
    default:
      throw new UnsupportedError(`seccomp: unsupported host architecture ${process.arch}`);
  }
}

/**
 * The number of system call `name` on `arch`, or `undefined` if that architecture lacks it
 * (e.g. `open` on aarch64).
 */
export function syscallNumber(arch: SeccompArch, name: string): number | undefined {
  return archInfo(arch).syscalls.get(name);
}
