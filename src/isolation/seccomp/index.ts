/**
 * Seccomp for dockless: Docker's default profile, a compiler to classic BPF, and
 * a cache for the program every container start needs.
 * @module
 */
import { capabilityNumber } from '../capabilities.js';
import { compileSeccomp } from './compile.js';
import { DEFAULT_SECCOMP_PROFILE } from './default-profile.js';
import type { SeccompArch, SeccompProfile } from './types.js';

export { hostSeccompArch, syscallNumber } from './arch.js';
export { compileSeccomp, type CompileSeccompOptions } from './compile.js';
export { DEFAULT_SECCOMP_PROFILE } from './default-profile.js';
export { parseDockerSeccompProfile } from './docker-profile.js';
export type * from './types.js';

/** The capabilities the default profile's rules test; no other capability changes its program. */
const RELEVANT_CAPS: ReadonlySet<number> = relevantCapabilities(DEFAULT_SECCOMP_PROFILE);

function relevantCapabilities(profile: SeccompProfile): Set<number> {
  const caps = new Set<number>();
  for (const rule of profile.rules) {
    for (const name of [...(rule.includes?.caps ?? []), ...(rule.excludes?.caps ?? [])]) {
      const nr = capabilityNumber(name);
      if (nr !== undefined) caps.add(nr);
    }
  }
  return caps;
}

const cache = new Map<string, Uint8Array>();

/**
 * Docker's default seccomp program for `arch` and a container holding `capabilities`
 * (capability numbers, e.g. from `resolveCapabilities`), compiled once per distinct
 * outcome and cached for the life of the process: the key keeps only the
 * capabilities the profile looks at (CAP_SYS_ADMIN, CAP_SYS_PTRACE, ...), so
 * Docker's default set and most `--cap-add` variants share one entry.
 *
 * Each call returns a fresh copy (a few KiB) so no caller can alter the program
 * another container will be given.
 */
export function defaultSeccompProgram(arch: SeccompArch, capabilities: readonly number[]): Uint8Array {
  const relevant = [...new Set(capabilities.filter((c) => RELEVANT_CAPS.has(c)))].sort((a, b) => a - b);
  const key = `${arch}:${relevant.join(',')}`;
  let program = cache.get(key);
  if (!program) {
    program = compileSeccomp(DEFAULT_SECCOMP_PROFILE, { arch, capabilities: relevant });
    cache.set(key, program);
  }
  return program.slice();
}
