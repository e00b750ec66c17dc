import type { RootfsOp } from './native-types.js';

/** mount(2) flags used by the plan (linux/mount.h). @internal */
export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  BIND: 0x1000,
  REC: 0x4000,
  STRICTATIME: 0x1000000,
} as const;

/** Docker's masked paths (moby oci/defaults.go): hidden behind /dev/null or an empty tmpfs. */
export const MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/interrupts',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];

/** Docker's read-only paths. */
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** The character devices every container gets (runc's default set), with their numbers. */
const DEVICES: [name: string, major: number, minor: number][] = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
  ['tty', 5, 0],
];


/** A bind mount of a host path into the container. @internal */
export interface PlanBind {
  source: string;
  target: string;
  readonly: boolean;
}

/** A tmpfs mount in the container. @internal */
export interface PlanTmpfs {
  target: string;
  readonly: boolean;
  size?: number;
}

/** What the filesystem plan depends on. @internal */
export interface RootfsPlanInput {
  workdir: string;
  /** Host files bound over /etc/hostname, /etc/hosts and /etc/resolv.conf. */
  etcFiles: { hostname: string; hosts: string; resolvConf: string };
  binds: PlanBind[];
  tmpfs: PlanTmpfs[];
  /** With a tty: the console's devpts instance (a detached mount fd), attached at /dev/pts instead of a new one. */
  consoleMount?: number;
  /** Keep /sys writable (only for a container sharing the host's network, as Docker does not either — so false). */
  readonlySys?: boolean;
}

/**
 * The ordered filesystem plan of a container's first process, the same one
 * Docker/runc apply: /proc, a tmpfs /dev with the standard devices and devpts,
 * a read-only /sys, /dev/shm and /dev/mqueue, the /etc files, user mounts,
 * then masked and read-only paths (last, so nothing mounted later uncovers them).
 * @internal
 */
export function rootfsPlan(input: RootfsPlanInput): RootfsOp[] {
  const secure = MS.NOSUID | MS.NOEXEC | MS.NODEV;
  const ops: RootfsOp[] = [
    { op: 'mount', fstype: 'proc', source: 'proc', target: '/proc', flags: secure, data: '' },
    { op: 'mount', fstype: 'tmpfs', source: 'tmpfs', target: '/dev', flags: MS.NOSUID | MS.STRICTATIME, data: 'mode=755,size=65536k' },
  ];
  for (const [name, major, minor] of DEVICES) {
    ops.push({ op: 'mknod', target: `/dev/${name}`, mode: 0o666, major, minor, uid: 0, gid: 0 });
  }
  ops.push(
    input.consoleMount === undefined
      ? { op: 'mount', fstype: 'devpts', source: 'devpts', target: '/dev/pts', flags: MS.NOSUID | MS.NOEXEC, data: 'newinstance,ptmxmode=0666,mode=0620,gid=5' }
      : { op: 'bind', sourceFd: input.consoleMount, target: '/dev/pts', flags: MS.NOSUID | MS.NOEXEC },
    { op: 'symlink', target: '/dev/ptmx', linkTo: 'pts/ptmx' },
    { op: 'mount', fstype: 'tmpfs', source: 'shm', target: '/dev/shm', flags: secure, data: 'mode=1777,size=65536k' },
    { op: 'mount', fstype: 'mqueue', source: 'mqueue', target: '/dev/mqueue', flags: secure, data: '' },
    { op: 'symlink', target: '/dev/fd', linkTo: '/proc/self/fd' },
    { op: 'symlink', target: '/dev/stdin', linkTo: '/proc/self/fd/0' },
    { op: 'symlink', target: '/dev/stdout', linkTo: '/proc/self/fd/1' },
    { op: 'symlink', target: '/dev/stderr', linkTo: '/proc/self/fd/2' },
    { op: 'symlink', target: '/dev/core', linkTo: '/proc/kcore' },
    { op: 'mount', fstype: 'sysfs', source: 'sysfs', target: '/sys', flags: secure | (input.readonlySys === false ? 0 : MS.RDONLY), data: '' },
    { op: 'bind', source: input.etcFiles.hostname, target: '/etc/hostname', flags: 0 },
    { op: 'bind', source: input.etcFiles.hosts, target: '/etc/hosts', flags: 0 },
    { op: 'bind', source: input.etcFiles.resolvConf, target: '/etc/resolv.conf', flags: 0 },
  );
  for (const b of input.binds) {
    ops.push({ op: 'bind', source: b.source, target: b.target, flags: MS.REC | (b.readonly ? MS.RDONLY : 0) });
  }
  for (const t of input.tmpfs) {
    const data = t.size ? `size=${t.size}` : '';
    ops.push({ op: 'mount', fstype: 'tmpfs', source: 'tmpfs', target: t.target, flags: MS.NOSUID | MS.NODEV | (t.readonly ? MS.RDONLY : 0), data });
  }
  for (const p of MASKED_PATHS) ops.push({ op: 'mask', target: p });
  for (const p of READONLY_PATHS) ops.push({ op: 'readonly', target: p });
  // The image's root always exists; native refuses '/' as a target.
  if (input.workdir !== '/') ops.push({ op: 'mkdirp', target: input.workdir, mode: 0o755, uid: 0, gid: 0 });
  return ops;
}
