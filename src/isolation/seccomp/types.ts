/**
 * dockless's seccomp profile format: Docker's profile model (rules with
 * `includes`/`excludes` on capabilities, architectures and kernel version),
 * typed, with argument conditions spelled out.
 * @module
 */

/** The architectures dockless compiles filters for (the native ABI of the host). */
export type SeccompArch = 'x86_64' | 'aarch64';

/**
 * What the kernel does with a system call:
 * - `allow`: run it;
 * - `{ errno }`: fail it with that errno (0..4095) without running it;
 * - `kill-process` / `kill-thread`: SIGSYS that cannot be caught (kill-process needs Linux 4.14);
 * - `trap`: deliver a catchable SIGSYS;
 * - `log`: run it and log it (Linux 4.14).
 *
 * Tracer and user-notification actions are not supported: there is no daemon to receive them.
 */
export type SeccompAction = 'allow' | 'kill-process' | 'kill-thread' | 'trap' | 'log' | { errno: number };

/**
 * Comparison of a system call argument with `value`, as libseccomp's `SCMP_CMP_*`.
 * All are unsigned. `masked-eq` is `(arg & mask) == value`.
 */
export type SeccompOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'masked-eq';

/** A condition on one system call argument. */
export interface SeccompArgCondition {
  /** Argument index, 0..5. */
  index: number;
  op: SeccompOp;
  /** Value compared with (a 64-bit unsigned integer; use a bigint above 2^53). */
  value: number | bigint;
  /** For `masked-eq`: the mask applied to the argument first. */
  mask?: number | bigint;
  /**
   * How many bits of the argument to compare. 64 (the default) compares the whole
   * register, as libseccomp does. 32 compares only the low half: right for
   * arguments the kernel declares as `int`/`unsigned int`, which it truncates,
   * so that garbage in the upper half cannot slip past a `ne` test.
   */
  width?: 32 | 64;
}

/** When a rule applies. Every given field must hold. */
export interface SeccompIncludes {
  /**
   * The rule applies only on these architectures. Docker's names are understood:
   * `amd64` is `x86_64`, `arm64` is `aarch64`; others (`x86`, `arm`, `s390x`, ...)
   * never match a dockless target.
   */
  arches?: readonly string[];
  /** The rule applies only if the container has all of these capabilities (`CAP_` names). */
  caps?: readonly string[];
  /** The rule applies only on kernels at least this version (`"4.8"`). */
  minKernel?: string;
}

/** When a rule does not apply. Any given field that holds excludes the rule. */
export interface SeccompExcludes {
  /** Skip the rule on these architectures (names as in {@link SeccompIncludes.arches}). */
  arches?: readonly string[];
  /** Skip the rule if the container has any of these capabilities. */
  caps?: readonly string[];
  /** Skip the rule on kernels at least this version. */
  minKernel?: string;
}

/** One rule: these system calls get `action` when all `args` conditions hold. */
export interface SeccompRule {
  /** System call names; a name the target architecture lacks is skipped (as libseccomp does). */
  names: readonly string[];
  action: SeccompAction;
  /** Conditions that must all hold (AND). None: the rule always matches. */
  args?: readonly SeccompArgCondition[];
  includes?: SeccompIncludes;
  excludes?: SeccompExcludes;
  /** Why the rule exists. */
  comment?: string;
}

/**
 * A seccomp profile. For each system call the first applicable rule (in order)
 * whose conditions hold decides; otherwise `defaultAction` does.
 */
export interface SeccompProfile {
  defaultAction: SeccompAction;
  rules: readonly SeccompRule[];
}
