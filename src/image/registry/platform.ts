/**
 * Platforms (`linux/amd64`, `linux/arm64/v8`, …) and the choice of one manifest
 * out of a multi-platform index, following the matching rules of containerd's
 * `platforms` package: names are normalized (`aarch64` is `arm64`, `arm64/v8`
 * is plain `arm64`), and a CPU runs images built for older variants of its
 * architecture, newest first.
 * @module
 */

import { InvalidOptionError, NoMatchingPlatformError } from '../../errors.js';
import type { Descriptor, ImageIndex } from './manifest.js';

/** An OS/architecture pair as found in image indexes and image configs. */
export interface Platform {
  /** Operating system, e.g. `linux`. */
  os: string;
  /** CPU architecture in Go's naming: `amd64`, `arm64`, `arm`, `386`, `ppc64le`, `s390x`, `riscv64`. */
  architecture: string;
  /** CPU variant, e.g. `v7` for `arm`, `v8` for `arm64`, `v3` for `amd64`. */
  variant?: string;
  /** OS version (Windows images). */
  'os.version'?: string;
  /** Required OS features (Windows images). */
  'os.features'?: string[];
}

const ARCH_ALIASES: Record<string, string> = {
  x86_64: 'amd64',
  'x86-64': 'amd64',
  x64: 'amd64',
  aarch64: 'arm64',
  armhf: 'arm',
  armel: 'arm',
  i386: '386',
  i686: '386',
  ia32: '386',
  ppc64el: 'ppc64le',
};

/**
 * Variants each architecture can run, best (newest) first, starting from each
 * possible host variant. An arm64 host is `v8` and runs images without variant.
 */
const VARIANT_ORDER: Record<string, string[]> = {
  arm: ['v8', 'v7', 'v6', 'v5'],
  arm64: ['v9.5', 'v9.4', 'v9.3', 'v9.2', 'v9.1', 'v9', 'v8.9', 'v8.8', 'v8.7', 'v8.6', 'v8.5', 'v8.4', 'v8.3', 'v8.2', 'v8.1', 'v8'],
  amd64: ['v4', 'v3', 'v2', 'v1'],
};
/** The variant an architecture has when none is named. */
const DEFAULT_VARIANT: Record<string, string> = { arm: 'v7', arm64: 'v8', amd64: 'v1' };

/**
 * The platform of the running process: `linux/amd64` on x86-64,
 * `linux/arm64/v8` on 64-bit ARM, `linux/arm/v7` (or the Node build's ARM
 * version) on 32-bit ARM.
 */
export function currentPlatform(): Platform {
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  const arch = process.arch;
  switch (arch) {
    case 'x64':
      return { os, architecture: 'amd64' };
    case 'arm64':
      return { os, architecture: 'arm64', variant: 'v8' };
    case 'arm': {
      const armVersion = (process.config.variables as Record<string, unknown>).arm_version;
      return { os, architecture: 'arm', variant: `v${typeof armVersion === 'string' || typeof armVersion === 'number' ? armVersion : 7}` };
    }
    case 'ia32':
      return { os, architecture: '386' };
    case 'ppc64':
      // Node only runs little-endian on Linux/ppc64.
      return { os, architecture: 'ppc64le' };
    default:
      return { os, architecture: arch };
  }
}

/**
 * Normalize names the way containerd does: lowercase, architecture aliases
 * (`x86_64` → `amd64`, `aarch64` → `arm64`), variant spelled `vN`. The
 * implied variant of `arm64` (`v8`) and `amd64` (`v1`) is left out, while
 * 32-bit `arm` always names one (`v7` when none is given), as images do.
 */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase();
  const rawArch = p.architecture.toLowerCase();
  const architecture = ARCH_ALIASES[rawArch] ?? rawArch;
  let variant = p.variant?.toLowerCase() || undefined;
  if (rawArch === 'armel' && !variant) variant = 'v6';
  if (rawArch === 'armhf' && !variant) variant = 'v7';
  if (variant && /^\d/.test(variant)) variant = `v${variant}`;
  if (architecture === 'arm' && !variant) variant = DEFAULT_VARIANT.arm;
  if ((architecture === 'arm64' && variant === 'v8') || (architecture === 'amd64' && variant === 'v1')) variant = undefined;
  const out: Platform = { os, architecture };
  if (variant) out.variant = variant;
  if (p['os.version']) out['os.version'] = p['os.version'];
  if (p['os.features']) out['os.features'] = p['os.features'];
  return out;
}

/**
 * Parse `os/arch[/variant]`, e.g. `linux/arm64/v8`; a bare `arch` means the
 * current OS.
 * @throws InvalidOptionError (option `platform`) when malformed.
 */
export function parsePlatform(s: string): Platform {
  const parts = s.split('/');
  if (parts.some((part) => !/^[A-Za-z0-9_.-]+$/.test(part)) || parts.length > 3) {
    throw new InvalidOptionError('platform', `${JSON.stringify(s)} is not of the form os/architecture[/variant]`);
  }
  if (parts.length === 1) return normalizePlatform({ os: currentPlatform().os, architecture: parts[0]! });
  const p: Platform = { os: parts[0]!, architecture: parts[1]! };
  if (parts[2]) p.variant = parts[2];
  return normalizePlatform(p);
}

/** `os/arch[/variant]`, e.g. `linux/arm/v7`. */
export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/**
 * How well a host of platform `want` runs an image built for `have`:
 * 0 for an exact match, higher for older variants, `undefined` when it cannot.
 */
export function platformRank(want: Platform, have: Platform): number | undefined {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return undefined;
  const order = VARIANT_ORDER[w.architecture];
  const wantVariant = w.variant ?? DEFAULT_VARIANT[w.architecture];
  const haveVariant = h.variant ?? DEFAULT_VARIANT[w.architecture];
  if (wantVariant === haveVariant) return 0;
  if (!order || wantVariant === undefined || haveVariant === undefined) return undefined;
  const wi = order.indexOf(wantVariant);
  const hi = order.indexOf(haveVariant);
  if (wi === -1 || hi === -1 || hi < wi) return undefined;
  return hi - wi;
}

/** True when a host of platform `want` can run an image built for `have`. */
export function platformMatches(want: Platform, have: Platform): boolean {
  return platformRank(want, have) !== undefined;
}

/**
 * True for index entries that are not runnable images: BuildKit's attestation
 * manifests (provenance, SBOM), marked by platform `unknown/unknown` and the
 * `vnd.docker.reference.type` annotation.
 */
export function isAttestation(d: Descriptor): boolean {
  if (d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest') return true;
  return d.platform?.os === 'unknown' && d.platform.architecture === 'unknown';
}

/**
 * Choose the manifest for `want` from an index: the best-ranked platform
 * match, the first one in index order among equals. Attestations and entries
 * without a platform are skipped.
 * @param reference named in the error when nothing matches.
 * @throws NoMatchingPlatformError listing the platforms the index has.
 */
export function selectManifest(index: ImageIndex, want: Platform, reference: string): Descriptor {
  let best: Descriptor | undefined;
  let bestRank = Infinity;
  for (const entry of index.manifests) {
    if (isAttestation(entry) || !entry.platform) continue;
    const rank = platformRank(want, entry.platform);
    if (rank !== undefined && rank < bestRank) {
      best = entry;
      bestRank = rank;
    }
  }
  if (!best) {
    const available = index.manifests
      .filter((d) => d.platform && !isAttestation(d))
      .map((d) => formatPlatform(normalizePlatform(d.platform!)));
    throw new NoMatchingPlatformError(reference, formatPlatform(normalizePlatform(want)), available);
  }
  return best;
}
