import { isAbsolute, posix } from 'node:path';
import { InvalidOptionError, UnsupportedError } from '../errors.js';
import type { CgroupLimits } from '../isolation/cgroup/index.js';
import type { NativeRlimit } from '../isolation/native-types.js';
import { signalNumber } from './signals.js';

/** The parts of an OCI image config a container starts from. @internal */
export interface ImageRuntimeConfig {
  Env?: string[] | null;
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  WorkingDir?: string;
  User?: string;
  StopSignal?: string;
  Labels?: Record<string, string> | null;
}

/** A mount in its normalized form. */
export interface MountConfig {
  type: 'bind' | 'volume' | 'tmpfs';
  /** Host path (bind), volume name (volume), or empty (tmpfs). */
  source: string;
  target: string;
  readonly: boolean;
  /** tmpfs size in bytes. */
  size?: number;
}

/**
 * A container's normalized, immutable configuration: options merged with the
 * image's config by Docker's rules. Stored as `config.json`.
 * @internal
 */
export interface ContainerConfig {
  id: string;
  name: string;
  created: string;
  image: string;
  imageId: string;
  /** Final entrypoint and cmd, after Docker's merge; `argv` is their concatenation. */
  entrypoint: string[];
  cmd: string[];
  env: string[];
  workdir: string;
  user: string;
  hostname: string;
  labels: Record<string, string>;
  tty: boolean;
  openStdin: boolean;
  autoRemove: boolean;
  limits: CgroupLimits;
  ulimits: NativeRlimit[];
  capabilities: number[];
  seccomp: 'default' | 'unconfined';
  noNewPrivileges: boolean;
  readonlyRootfs: boolean;
  network: 'none' | 'host';
  mounts: MountConfig[];
  stopSignal: number;
  stopTimeout: number;
}

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Docker's env merge: the image's env, overridden key by key by the container's; PATH always set. @internal */
export function mergeEnv(imageEnv: string[], env: Record<string, string> | string[] | undefined, hostname: string): string[] {
  const merged = new Map<string, string>();
  const put = (entry: string, option: string) => {
    const eq = entry.indexOf('=');
    const key = eq === -1 ? entry : entry.slice(0, eq);
    if (!key || entry.includes('\0')) throw new InvalidOptionError(option, `invalid environment entry ${JSON.stringify(entry)}`);
    // `KEY` alone means "take it from the caller's environment", as `docker run -e KEY`.
    const value = eq === -1 ? process.env[key] : entry.slice(eq + 1);
    if (value !== undefined) merged.set(key, value);
  };
  merged.set('PATH', DEFAULT_PATH);
  merged.set('HOSTNAME', hostname);
  for (const e of imageEnv) put(e, 'image.Env');
  if (Array.isArray(env)) for (const e of env) put(e, 'env');
  else if (env) for (const [k, v] of Object.entries(env)) put(`${k}=${v}`, 'env');
  return [...merged].map(([k, v]) => `${k}=${v}`);
}

/** Docker's entrypoint/cmd merge. @internal */
export function mergeCommand(image: ImageRuntimeConfig, entrypoint?: string[], cmd?: string[]): { entrypoint: string[]; cmd: string[] } {
  // An explicit entrypoint resets the image's Cmd, as `docker run --entrypoint` does.
  const ep = entrypoint ?? image.Entrypoint ?? [];
  const c = cmd ?? (entrypoint ? [] : image.Cmd ?? []);
  if (ep.length + c.length === 0) throw new InvalidOptionError('cmd', 'no command specified (the image has neither Entrypoint nor Cmd)');
  return { entrypoint: [...ep], cmd: [...c] };
}

/** Parses Docker's short mount form and normalizes object mounts. @internal */
export function parseMount(spec: string | { type?: MountConfig['type']; source?: string; target: string; readonly?: boolean; size?: number }, index: number): MountConfig {
  const option = `volumes.${index}`;
  let m: MountConfig;
  if (typeof spec === 'string') {
    const parts = spec.split(':');
    if (parts.length < 2 || parts.length > 3) throw new InvalidOptionError(option, `expected source:target[:ro|rw], got ${JSON.stringify(spec)}`);
    const [source, target, mode = 'rw'] = parts as [string, string, string?];
    if (mode !== 'ro' && mode !== 'rw') throw new InvalidOptionError(option, `unknown mode ${JSON.stringify(mode)} (ro or rw)`);
    m = { type: isAbsolute(source) ? 'bind' : 'volume', source, target, readonly: mode === 'ro' };
  } else {
    const type = spec.type ?? (spec.source && isAbsolute(spec.source) ? 'bind' : spec.source ? 'volume' : 'tmpfs');
    m = { type, source: spec.source ?? '', target: spec.target, readonly: spec.readonly ?? false, ...(spec.size ? { size: spec.size } : {}) };
  }
  if (!m.target.startsWith('/')) throw new InvalidOptionError(option, `target ${JSON.stringify(m.target)} must be an absolute path`);
  m.target = posix.normalize(m.target);
  if (m.target === '/') throw new InvalidOptionError(option, 'cannot mount over /');
  if (m.type === 'bind' && !isAbsolute(m.source)) throw new InvalidOptionError(option, 'a bind mount needs an absolute source path');
  if (m.type === 'volume' && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(m.source)) throw new InvalidOptionError(option, `invalid volume name ${JSON.stringify(m.source)}`);
  if (m.type === 'tmpfs' && m.source) throw new InvalidOptionError(option, 'a tmpfs mount takes no source');
  return m;
}

/** Resolves the stop signal from options and image. @internal */
export function stopSignalOf(option: string | number | undefined, image: ImageRuntimeConfig): number {
  const n = signalNumber(option ?? image.StopSignal ?? 'SIGTERM');
  if (n === undefined) throw new InvalidOptionError('stopSignal', `unknown signal ${JSON.stringify(option ?? image.StopSignal)}`);
  return n;
}

/** Rejects options that need parts not built yet, before anything is created. @internal */
export function rejectUnsupported(opts: { ports?: unknown[] }): void {
  if (opts.ports?.length) throw new UnsupportedError('ports need a bridge network, which this version does not provide yet (use network "host")');
}
