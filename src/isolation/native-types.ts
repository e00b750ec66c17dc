/**
 * The contract between TypeScript and the C addon (native/).
 *
 * TypeScript validates and normalizes everything (zod, Docker's defaults,
 * PATH lookup candidates, mount plans); the addon only re-checks types and
 * bounds and turns the plan into raw system calls. Every string array and
 * number the child needs is copied into one buffer *before* clone, because
 * after clone the child may not allocate, take locks or call into JS.
 * @internal
 * @module
 */

/** One step of the in-container filesystem plan, executed in order by the child before pivot_root. */
export type RootfsOp =
  /**
   * Mount a fresh filesystem (proc, sysfs, tmpfs, devpts, mqueue) at `target`, a path inside the
   * rootfs resolved with openat2(RESOLVE_IN_ROOT); missing directories are created (mode 0755).
   */
  | { op: 'mount'; fstype: string; source: string; target: string; flags: number; data: string }
  /**
   * Bind-mount a host path (opened before anything in the rootfs is touched) at `target` inside
   * the rootfs; `flags` may add MS_RDONLY (applied with a remount), MS_REC, MS_NOSUID, MS_NODEV, MS_NOEXEC.
   * If the source is a file the target is created as an empty file, else as a directory.
   */
  | { op: 'bind'; source: string; target: string; flags: number }
  /** Attach a detached mount (an fd from {@link NativeAddon.openConsole}'s `mount`) at `target`, as `bind` does. */
  | { op: 'bind'; sourceFd: number; target: string; flags: number }
  /** mknod a character device inside the rootfs (replacing nothing: EEXIST is ignored). */
  | { op: 'mknod'; target: string; mode: number; major: number; minor: number; uid: number; gid: number }
  /** Create a symlink `target` -> `linkTo` inside the rootfs (EEXIST ignored). */
  | { op: 'symlink'; target: string; linkTo: string }
  /** mkdir -p of `target` inside the rootfs, with `mode`, owned by uid:gid (only newly made directories are chowned). */
  | { op: 'mkdirp'; target: string; mode: number; uid: number; gid: number }
  /** Docker's masked path: /dev/null bound over a file, an empty read-only tmpfs over a directory; ENOENT ignored. */
  | { op: 'mask'; target: string }
  /** Docker's read-only path: bind the path onto itself and remount it read-only; ENOENT ignored. */
  | { op: 'readonly'; target: string }
  /** Write `content` to the file `target` inside the rootfs, creating or truncating it (mode 0644). */
  | { op: 'write'; target: string; content: string };

/** An rlimit, with the resource already resolved to its number (RLIMIT_NOFILE is 7). */
export interface NativeRlimit {
  resource: number;
  soft: number;
  hard: number;
}

/** Where the new process goes in the cgroup tree. */
export interface NativeCgroupPlacement {
  /** cgroup v2: an O_DIRECTORY fd of the target cgroup, used with CLONE_INTO_CGROUP. */
  dirFd?: number;
  /** cgroup v1: fds of `cgroup.procs` files (opened for writing) the child writes "0" into before anything else. */
  procsFds?: number[];
}

/** A user namespace mapping line: container id `inside` maps to host id `outside` for `count` ids. */
export interface NativeIdMap {
  inside: number;
  outside: number;
  count: number;
}

/** Everything the native spawn needs. Validated in TypeScript; re-checked in C. */
export interface NativeSpawnSpec {
  /**
   * `init`: a container's first process, in new namespaces, with the overlay root mounted.
   * `join`: a process entering the namespaces of an existing container (exec).
   */
  mode: 'init' | 'join';
  /** For `join`: the handle of the container's first process. */
  join?: NativeProcess;
  /** For `init`: which new namespaces to create. mount, pid, uts, ipc and cgroup are always new. */
  newNetwork?: boolean;
  /** For `init`: join this network namespace (an fd of /proc/PID/ns/net or a bind-mounted ns file) instead of making one. */
  netnsFd?: number;
  /** For `init`: make a new user namespace with these maps (rootless); the parent writes the maps before the child goes on. */
  userns?: { uidMap: NativeIdMap[]; gidMap: NativeIdMap[] };
  /** For `init`: the overlay root filesystem. */
  rootfs?: {
    /** Image layer directories, topmost first (overlay's lowerdir order). */
    lower: string[];
    upper: string;
    work: string;
    /** The (host) directory the overlay is mounted on, inside the child's private mount namespace. */
    target: string;
    readonly: boolean;
    /**
     * Mount with overlay's `volatile`: the upper fs is not synced when the
     * container's mount namespace goes. The caller must remove
     * `<work>/work/incompat/volatile` before mounting the same upper again.
     */
    volatile?: boolean;
  };
  /** For `init`: executed in order, inside the new root, before pivot_root. */
  ops?: RootfsOp[];
  hostname?: string;
  /** Candidate absolute paths to execve, tried in order; ENOENT/ENOTDIR/EACCES move on to the next (execvpe's rules). */
  execPaths: string[];
  argv: string[];
  env: string[];
  /** Working directory inside the container; must exist (an `mkdirp` op creates it for `init`). */
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  /** Capability numbers to keep in the bounding, permitted and effective sets (and inheritable: none). */
  capabilities: number[];
  noNewPrivileges: boolean;
  /** A compiled seccomp BPF program: an array of `struct sock_filter` (8 bytes each), installed last before execve. */
  seccomp?: Uint8Array;
  rlimits: NativeRlimit[];
  /** fds to become the child's 0, 1 and 2. */
  stdio: [number, number, number];
  /** Make fd 0 the controlling terminal (after setsid). */
  tty: boolean;
  /** Where to place the process before it runs anything (see {@link NativeCgroupPlacement}). */
  cgroup?: NativeCgroupPlacement;
  /** Send SIGKILL to the child if the spawning thread (Node's main thread) dies. */
  killWithParent: boolean;
}

/** How a process ended. */
export interface NativeExit {
  /** Exit code if it exited, else null. */
  exitCode: number | null;
  /** Signal number if it was killed by a signal, else null. */
  signal: number | null;
}

/**
 * A running process, owned by the addon: the addon holds its pidfd, watches it with libuv
 * and reaps it. The pidfd is never handed to JS, so it cannot be misused after it is closed.
 */
export interface NativeProcess {
  /** The pid in the host's PID namespace. */
  readonly pid: number;
}

/** The result of {@link NativeAddon.spawn}. */
export interface NativeSpawnResult {
  process: NativeProcess;
  /**
   * Settles when the child has exec'd the user's program (resolves) or failed before
   * (rejects with a ContainerStartError carrying the failed step and errno).
   */
  started: Promise<void>;
}

/** The functions the addon exports. */
export interface NativeAddon {
  /** Hands the addon the TypeScript error classes it must throw. Called once at load. */
  init(classes: {
    SystemError: new (syscall: string, errno: number, detail?: string) => Error;
    ContainerStartError: new (step: string, errno: number, detail?: string) => Error;
  }): void;
  /**
   * Creates a process as described. `onExit` is called once, from the event loop, when the
   * process has exited and been reaped (observed through its pidfd; no polling, no blocking).
   * The handle is unref'd: it does not by itself keep Node alive (see {@link ref}).
   */
  spawn(spec: NativeSpawnSpec, onExit: (exit: NativeExit) => void): NativeSpawnResult;
  /** Sends a signal through the pidfd. Throws SystemError(ESRCH) once the process is gone. */
  signal(process: NativeProcess, signal: number): void;
  /** Keeps (true) or stops keeping (false) the Node event loop alive while the process runs. */
  ref(process: NativeProcess, keepAlive: boolean): void;
  /** pipe2(O_CLOEXEC): returns [readFd, writeFd]. */
  pipe(): [number, number];
  /** Opens a pseudo-terminal pair (master O_CLOEXEC|O_NONBLOCK-capable, slave O_CLOEXEC). */
  openpty(rows: number, cols: number): { master: number; slave: number };
  /**
   * A container console: a pty of a new devpts instance (so the container sees
   * its slave as /dev/pts/0), returned with that instance as a detached mount
   * to attach at /dev/pts. All three fds are O_CLOEXEC.
   */
  openConsole(rows: number, cols: number): { mount: number; master: number; slave: number };
  /** TIOCSWINSZ on a terminal fd. */
  resizePty(fd: number, rows: number, cols: number): void;
  /** flock(2). Returns false when `nonblock` and the lock is held elsewhere. */
  flock(fd: number, operation: 'shared' | 'exclusive' | 'unlock', nonblock: boolean): boolean;
  /** umount2(path, MNT_DETACH); ENOENT and EINVAL (not a mount point) are not errors. */
  unmount(path: string): void;
  /**
   * mknod of a character or block device (`makedev(major, minor)`) or a fifo
   * at `path`, made with mknodat in its parent directory. `mode` is the file
   * type (S_IFCHR, S_IFBLK or S_IFIFO) and the permission bits, which are set
   * exactly (the umask does not apply). Never follows a symlink at `path`.
   */
  mknod(path: string, mode: number, major: number, minor: number): void;
  /** lsetxattr(path, name, value, 0): creates or replaces an attribute of `path` itself (a symlink is not followed). */
  lsetxattr(path: string, name: string, value: Uint8Array): void;
  /** lgetxattr(path, name): the attribute's value; SystemError(ENODATA) when there is none. */
  lgetxattr(path: string, name: string): Buffer;
  /** llistxattr(path): the names of the attributes of `path` itself, in the kernel's order. */
  llistxattr(path: string): string[];
}
