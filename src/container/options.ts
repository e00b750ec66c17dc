import { z } from 'zod';
import type { PullPolicy } from '../image/images.js';
import type { WaitStrategy } from './wait.js';

const stringMap = z.record(z.string(), z.string());
const nonEmpty = z.string().min(1, 'must not be empty');
const noNul = (s: string) => !s.includes('\0');

/** A mount given as Docker's short form (`/host:/ctr:ro`, `volname:/ctr`) or as an object. */
const mountSchema = z.union([
  z.string().min(1),
  z
    .object({
      type: z.enum(['bind', 'volume', 'tmpfs']).optional(),
      source: z.string().optional(),
      target: z.string().refine((s) => s.startsWith('/'), 'must be an absolute path'),
      readonly: z.boolean().optional(),
      /** tmpfs size in bytes. */
      size: z.number().int().positive().optional(),
    })
    .strict(),
]);

const ulimitSchema = z.union([
  z.string(),
  z.object({ name: z.string(), soft: z.number().int(), hard: z.number().int() }).strict(),
]);

/** The schema behind {@link ContainerOptions}. @internal */
export const containerOptionsSchema = z
  .object({
    image: nonEmpty,
    pull: z.enum(['missing', 'always', 'never']).optional(),
    name: z.string().optional(),
    cmd: z.array(z.string().refine(noNul, 'must not contain NUL')).optional(),
    entrypoint: z.array(z.string().refine(noNul, 'must not contain NUL')).optional(),
    env: z.union([stringMap, z.array(z.string())]).optional(),
    workdir: z.string().refine((s) => s.startsWith('/'), 'must be an absolute path').optional(),
    user: z.string().regex(/^[^:\s]+(:[^:\s]+)?$/, 'must be user, uid, user:group or uid:gid').optional(),
    hostname: z
      .string()
      .regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/, 'must be a valid RFC 1123 hostname')
      .max(64)
      .optional(),
    labels: stringMap.optional(),
    tty: z.boolean().optional(),
    openStdin: z.boolean().optional(),
    autoRemove: z.boolean().optional(),
    wait: z.boolean().optional(),
    limits: z.record(z.string(), z.unknown()).optional(),
    ulimits: z.array(ulimitSchema).optional(),
    capAdd: z.array(z.string()).optional(),
    capDrop: z.array(z.string()).optional(),
    seccomp: z.enum(['default', 'unconfined']).optional(),
    noNewPrivileges: z.boolean().optional(),
    readonlyRootfs: z.boolean().optional(),
    network: z.enum(['none', 'host']).optional(),
    ports: z.array(z.unknown()).optional(),
    volumes: z.array(mountSchema).optional(),
    stopSignal: z.union([z.string(), z.number().int().positive()]).optional(),
    stopTimeout: z.number().nonnegative().optional(),
    waitStrategy: z.custom<WaitStrategy>((v) => typeof v === 'object' && v !== null && typeof (v as WaitStrategy).waitUntilReady === 'function', 'must be a WaitStrategy').optional(),
    signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'must be an AbortSignal').optional(),
  })
  .strict();

/**
 * Options for {@link Engine.create} and {@link Engine.run}; names follow
 * Docker's and testcontainers' where they exist. Everything but `image` is optional.
 */
export interface ContainerOptions {
  /** Image reference (`busybox`, `localhost:5000/app:1`) or id (`sha256:…`, or a unique prefix). */
  image: string;
  /**
   * When to pull the image from its registry (`docker run --pull`): `missing`
   * (default) when no local image matches, `always` before every create,
   * `never`. A failed pull rejects with the pull's typed error and creates nothing.
   */
  pull?: PullPolicy;
  /** Container name (Docker's rules: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`); a random one when absent. */
  name?: string;
  /** Command; replaces the image's `Cmd`. */
  cmd?: string[];
  /** Entrypoint; replaces the image's `Entrypoint` and, as in Docker, drops the image's `Cmd`. */
  entrypoint?: string[];
  /** Environment, as `{ KEY: 'value' }` or `['KEY=value']`; merged over the image's `Env`. */
  env?: Record<string, string> | string[];
  /** Working directory (absolute); created if missing, as Docker does. */
  workdir?: string;
  /** `user`, `uid`, `user:group` or `uid:gid`, resolved against the image's /etc/passwd and /etc/group. */
  user?: string;
  /** Hostname; defaults to the first 12 characters of the container id. */
  hostname?: string;
  /** Labels, kept in the container's metadata and usable as list filters. */
  labels?: Record<string, string>;
  /** Allocate a pseudo-terminal for the process's stdio (`docker run -t`). */
  tty?: boolean;
  /** Keep stdin open so it can be written through {@link Container.stdin} (`docker run -i`). */
  openStdin?: boolean;
  /** Remove the container when it exits (`docker run --rm`). */
  autoRemove?: boolean;
  /** For `run`: resolve only once the container has exited (`docker run` without `-d`). */
  wait?: boolean;
  /** Resource limits in Docker's notations; see {@link LimitsInput}. */
  limits?: Record<string, unknown>;
  /** rlimits, as Docker's `nofile=1024:2048` strings or `{ name, soft, hard }`. */
  ulimits?: (string | { name: string; soft: number; hard: number })[];
  /** Capabilities to add to Docker's default 14 (`NET_ADMIN` or `CAP_NET_ADMIN`, or `ALL`). */
  capAdd?: string[];
  /** Capabilities to drop from Docker's default 14 (or `ALL`). */
  capDrop?: string[];
  /** `default`: Docker's default seccomp profile; `unconfined`: none. */
  seccomp?: 'default' | 'unconfined';
  /** Set no_new_privs (Docker's `--security-opt no-new-privileges`); default true. */
  noNewPrivileges?: boolean;
  /** Mount the root filesystem read-only (`--read-only`). */
  readonlyRootfs?: boolean;
  /** `none` (default: own network namespace with only loopback) or `host`. */
  network?: 'none' | 'host';
  /** Published ports; need a bridge network, which is not supported yet. */
  ports?: unknown[];
  /**
   * Mounts: `'/host/path:/in/container[:ro]'` binds a host path, `'name:/in/container'` a named
   * volume, or objects `{ type: 'bind' | 'volume' | 'tmpfs', source, target, readonly, size }`.
   */
  volumes?: (string | { type?: 'bind' | 'volume' | 'tmpfs'; source?: string; target: string; readonly?: boolean; size?: number })[];
  /** Signal `stop` sends first; defaults to the image's `StopSignal`, else SIGTERM. */
  stopSignal?: string | number;
  /** Seconds `stop` waits before SIGKILL; default 10, as Docker. */
  stopTimeout?: number;
  /** How `run` decides the container is ready; see {@link Wait}. */
  waitStrategy?: WaitStrategy;
  /** Aborts the create/start (and wait) in progress; whatever was made is removed. */
  signal?: AbortSignal;
}
