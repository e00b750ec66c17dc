import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import type { EventEmitter } from 'eventemitter3';
import createDebug from 'debug';
import {
  CommandNotFoundError,
  ContainerStartError,
  ContainerStateError,
  DocklessError,
  SystemError,
} from '../errors.js';
import type { Cgroup, CgroupDriver } from '../isolation/cgroup/index.js';
import { native } from '../isolation/native.js';
import type { NativeExit, NativeProcess } from '../isolation/native-types.js';
import { rootfsPlan } from '../isolation/rootfs-plan.js';
import type { ContainerState, RecordStore } from '../state/records.js';
import type { ContainerConfig } from './config.js';
import type { ContainerAction, EngineEvents } from './events.js';
import { formatLog, LogWriter, logFilter, readLog, tailLogFile, type LogEntry, type LogOptions } from './logs.js';
import { signalName, signalNumber } from './signals.js';
import { initSpec, joinSpec } from './spawn-spec.js';
import { makeStdio, type StdioPlumbing } from './stdio.js';
import { resolveUser } from './user.js';

const debug = createDebug('dockless:container');

/** How a container (or exec'd process) ended. */
export interface ExitResult {
  /** Exit code; 128 + signal number when killed by a signal, as Docker reports it. */
  exitCode: number;
  /** The kernel's OOM killer ended it (the container hit its memory limit). */
  oomKilled: boolean;
  /** The signal that killed it, e.g. `SIGKILL`, when one did. */
  signal?: string;
}

/** The result of {@link Container.exec}. */
export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr interleaved as they arrived. */
  output: string;
}

/** Options for {@link Container.exec}, as `docker exec`. */
export interface ExecOptions {
  env?: Record<string, string> | string[];
  /** `user[:group]`; defaults to the container's user. */
  user?: string;
  /** Absolute working directory; defaults to the container's. */
  workdir?: string;
  /** Bytes written to the process's stdin, which is then closed. */
  stdin?: string | Buffer;
  signal?: AbortSignal;
}

/** Docker-style `inspect` output. Field names follow `docker inspect`. */
export interface ContainerInspect {
  Id: string;
  Name: string;
  Created: string;
  Path: string;
  Args: string[];
  Image: string;
  State: {
    Status: string;
    Running: boolean;
    Paused: boolean;
    Restarting: boolean;
    OOMKilled: boolean;
    Dead: boolean;
    Pid: number;
    ExitCode: number;
    Error: string;
    StartedAt: string;
    FinishedAt: string;
  };
  RestartCount: number;
  LogPath: string;
  Config: {
    Hostname: string;
    User: string;
    Env: string[];
    Cmd: string[];
    Entrypoint: string[];
    Image: string;
    WorkingDir: string;
    Labels: Record<string, string>;
    Tty: boolean;
    OpenStdin: boolean;
    StopSignal: string;
    StopTimeout: number;
  };
  HostConfig: {
    AutoRemove: boolean;
    NetworkMode: string;
    ReadonlyRootfs: boolean;
    Memory: number;
    MemorySwap: number;
    NanoCpus: number;
    CpuQuota: number;
    CpuPeriod: number;
    CpuShares: number;
    CpusetCpus: string;
    PidsLimit: number;
    Binds: string[];
  };
  GraphDriver: { Name: 'overlay'; Data: { LowerDir: string; UpperDir: string; WorkDir: string; MergedDir: string } };
  Mounts: { Type: string; Source: string; Destination: string; RW: boolean }[];
}

/** What a container needs from its engine. @internal */
export interface EngineContext {
  readonly root: string;
  readonly records: RecordStore;
  readonly cgroups: CgroupDriver;
  readonly ownerId: string;
  readonly events: EventEmitter<EngineEvents>;
  /** Image layer dirs, topmost first. */
  layerDirs(imageId: string): string[];
  /** Host path of a named volume's data (created if missing). */
  volumePath(name: string): string;
  /** True if `ownerId` is a live engine. */
  ownerAlive(ownerId: string): boolean;
  forget(id: string): void;
}

interface Running {
  process: NativeProcess;
  cgroup: Cgroup;
  stdio: StdioPlumbing;
  log: LogWriter;
  exited: Promise<ExitResult>;
}

/**
 * A container. Get one from {@link Engine.create}, {@link Engine.run} or
 * {@link Engine.getContainer}. It is `await using`-able: disposal removes it
 * (forcefully), which is what a test wants at the end of its scope.
 */
export class Container implements AsyncDisposable {
  /** Full 64-hex id. */
  readonly id: string;
  /** Name, without Docker's leading slash. */
  readonly name: string;
  private running: Running | undefined;
  private starting: Promise<void> | undefined;
  private removed = false;
  private exitWaiters: ((r: ExitResult) => void)[] = [];

  /** @internal */
  constructor(
    private readonly ctx: EngineContext,
    /** @internal */ readonly config: ContainerConfig,
  ) {
    this.id = config.id;
    this.name = config.name;
  }

  private get dir(): string {
    return this.ctx.records.dir(this.id);
  }

  /** Path of the json-file log. */
  get logPath(): string {
    return join(this.dir, `${this.id}-json.log`);
  }

  /** The current state, read from disk (another process may own the container). */
  get state(): ContainerState {
    const s = this.ctx.records.readState(this.id);
    if (!s || this.removed) return { status: 'removing', ownerId: '', restartCount: 0 };
    return s;
  }

  /** True while the container's first process runs. */
  get isRunning(): boolean {
    return this.running !== undefined || (this.state.status === 'running' && !this.ownedHere());
  }

  /** Host pid of the first process while it runs. */
  get pid(): number | undefined {
    if (this.running) return this.running.process.pid;
    const s = this.state;
    return s.status === 'running' ? s.pid : undefined;
  }

  /** Live stdout of the current run (data before you read it is kept up to 1 MiB; {@link logs} has all). */
  get stdout(): Readable | undefined {
    return this.running?.stdio.stdout;
  }

  /** Live stderr of the current run (empty with a tty: the terminal merges it into stdout). */
  get stderr(): Readable | undefined {
    return this.running?.stdio.stderr;
  }

  /** stdin of the current run, when created with `openStdin`. */
  get stdin(): Writable | undefined {
    return this.running?.stdio.stdin;
  }

  private ownedHere(): boolean {
    return this.running !== undefined || this.state.ownerId === this.ctx.ownerId;
  }

  private emit(action: ContainerAction, attributes: Record<string, string> = {}): void {
    const ev = { action, id: this.id, name: this.name, image: this.config.image, time: new Date(), attributes };
    this.ctx.events.emit(action, ev);
    this.ctx.events.emit('event', ev);
  }

  private writeState(patch: Partial<ContainerState>): ContainerState {
    const next = { ...this.state, ...patch };
    this.ctx.records.writeState(this.id, next);
    return next;
  }

  /**
   * Starts the container's first process. Resolves once the program has been
   * exec'd; rejects with {@link ContainerStartError} (or {@link CommandNotFoundError})
   * if any setup step failed, leaving the container `created` with nothing running.
   */
  async start(): Promise<void> {
    if (this.starting) return this.starting;
    this.starting = this.doStart().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const state = this.state;
    if (this.removed || state.status === 'removing') throw new ContainerStateError(this.name, 'removed', 'start');
    if (this.running || state.status === 'running') return;
    if (state.ownerId && state.ownerId !== this.ctx.ownerId && this.ctx.ownerAlive(state.ownerId)) {
      throw new ContainerStateError(this.name, 'owned by another live engine', 'start');
    }
    const c = this.config;
    const dir = this.dir;
    const upper = join(dir, 'upper');
    const lowerDirs = this.ctx.layerDirs(c.imageId);
    const user = resolveUser(c.user, [upper, ...lowerDirs]);
    const env = c.env.some((e) => e.startsWith('HOME=')) ? c.env : [...c.env, `HOME=${user.home}`];

    // overlay leaves this marker after a volatile mount and refuses the next
    // mount while it is there; the last run of this upper ended cleanly.
    rmSync(join(dir, 'work', 'work', 'incompat'), { recursive: true, force: true });
    const cgroup = this.ctx.cgroups.create(this.id, c.limits);
    const log = new LogWriter(this.logPath);
    let stdio: StdioPlumbing | undefined;
    let process: NativeProcess | undefined;
    let exitedNative: Promise<NativeExit> | undefined;
    try {
      stdio = makeStdio({ tty: c.tty, openStdin: c.openStdin, log });
      const mounts = c.mounts;
      const ops = rootfsPlan({
        workdir: c.workdir,
        etcFiles: { hostname: join(dir, 'hostname'), hosts: join(dir, 'hosts'), resolvConf: join(dir, 'resolv.conf') },
        binds: mounts
          .filter((m) => m.type !== 'tmpfs')
          .map((m) => ({ source: m.type === 'bind' ? m.source : this.ctx.volumePath(m.source), target: m.target, readonly: m.readonly })),
        tmpfs: mounts.filter((m) => m.type === 'tmpfs').map((m) => ({ target: m.target, readonly: m.readonly, ...(m.size ? { size: m.size } : {}) })),
        ...(stdio.consoleMount !== undefined ? { consoleMount: stdio.consoleMount } : {}),
      });
      const placement = cgroup.placement();
      let started: Promise<void>;
      try {
        let onExit!: (e: NativeExit) => void;
        exitedNative = new Promise<NativeExit>((resolve) => (onExit = resolve));
        ({ process, started } = native.spawn(
          initSpec({ config: c, user, env, lowerDirs, upper, work: join(dir, 'work'), target: join(dir, 'rootfs'), ops, stdio: stdio.childFds, cgroup: placement.spec }),
          onExit,
        ));
      } finally {
        placement.release();
        stdio.closeChildSide();
      }
      await started;
    } catch (err) {
      // Nothing may stay behind: wait for the failed child to be reaped, then undo.
      if (exitedNative && process) {
        // The exit watch is unref'd by default; this wait must keep Node alive.
        native.ref(process, true);
        await exitedNative;
      }
      stdio?.destroy();
      log.close();
      cgroup.destroy();
      const e = translateStartError(err, [...c.entrypoint, ...c.cmd][0]!);
      this.writeState({ status: 'created', error: e.message, exitCode: e instanceof ContainerStartError ? e.exitCode : 125 });
      debug('start of %s failed: %s', this.id, e.message);
      throw e;
    }

    const exited = this.watchExit(process!, exitedNative!, stdio!, cgroup, log);
    this.running = { process: process!, cgroup, stdio: stdio!, log, exited };
    this.writeState({
      status: 'running',
      ownerId: this.ctx.ownerId,
      pid: process!.pid,
      pidStart: readPidStart(process!.pid),
      startedAt: new Date().toISOString(),
      error: '',
      exitCode: 0,
      oomKilled: false,
    });
    this.emit('start');
  }

  private async watchExit(process: NativeProcess, exitedNative: Promise<NativeExit>, stdio: StdioPlumbing, cgroup: Cgroup, log: LogWriter): Promise<ExitResult> {
    const exit = await exitedNative;
    // PID 1 is gone, so its PID namespace is torn down; every holder of the pipes dies with it.
    await stdio.drained;
    let oomKilled = false;
    try {
      oomKilled = cgroup.oomKilled();
    } catch {
      /* the cgroup may already be gone if the engine is closing */
    }
    cgroup.destroy();
    log.close();
    const result: ExitResult = {
      exitCode: exit.exitCode ?? 128 + (exit.signal ?? 0),
      oomKilled,
      ...(exit.signal ? { signal: signalName(exit.signal) } : {}),
    };
    this.running = undefined;
    if (!this.removed) {
      this.writeState({ status: 'exited', exitCode: result.exitCode, oomKilled, finishedAt: new Date().toISOString(), pid: 0 });
    }
    if (oomKilled) this.emit('oom');
    this.emit('die', { exitCode: String(result.exitCode) });
    for (const w of this.exitWaiters.splice(0)) w(result);
    if (this.config.autoRemove && !this.removed) await this.remove({ force: true }).catch((e) => debug('auto-remove of %s failed: %s', this.id, e));
    return result;
  }

  /**
   * Waits for the container to exit (`docker wait`). Resolves at once for a
   * container that has already exited.
   */
  async wait(options: { signal?: AbortSignal } = {}): Promise<ExitResult> {
    if (this.starting) await this.starting.catch(() => undefined);
    if (this.running) {
      // Awaiting a container must keep Node alive, as awaiting a child process does.
      native.ref(this.running.process, true);
      try {
        return await abortable(this.running.exited, options.signal);
      } finally {
        if (this.running) native.ref(this.running.process, false);
      }
    }
    const s = this.state;
    if (s.status === 'running' && !this.ownedHere()) return abortable(this.pollForeignExit(), options.signal);
    return { exitCode: s.exitCode ?? 0, oomKilled: s.oomKilled ?? false };
  }

  // A container run by another process: its exit shows up in its state file.
  private async pollForeignExit(): Promise<ExitResult> {
    for (;;) {
      const s = this.state;
      if (s.status !== 'running' || !this.ctx.ownerAlive(s.ownerId)) return { exitCode: s.exitCode ?? 137, oomKilled: s.oomKilled ?? false };
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Sends a signal to the first process (`docker kill`); default SIGKILL. */
  async kill(signal: string | number = 'SIGKILL'): Promise<void> {
    const sig = signalNumber(signal);
    if (sig === undefined) throw new DocklessError(`unknown signal ${JSON.stringify(signal)}`, 'ERR_INVALID_OPTION');
    if (this.running) {
      try {
        native.signal(this.running.process, sig);
      } catch (err) {
        if (!(err instanceof SystemError && err.errnoName === 'ESRCH')) throw err;
      }
    } else {
      const s = this.state;
      if (s.status !== 'running' || !s.pid) throw new ContainerStateError(this.name, s.status, 'kill');
      // Another process runs it: signal by pid, but only the process we started (pid reuse).
      if (readPidStart(s.pid) !== s.pidStart) return;
      try {
        globalThis.process.kill(s.pid, sig);
      } catch {
        /* already gone */
      }
    }
    this.emit('kill', { signal: String(sig) });
  }

  /**
   * Stops the container as `docker stop` does: the stop signal, then SIGKILL
   * after `timeout` seconds (default: the container's stopTimeout, 10).
   * Stopping a container that is not running is not an error.
   */
  async stop(options: { timeout?: number; signal?: string | number } = {}): Promise<ExitResult> {
    if (!this.isRunning) return this.wait();
    const timeout = options.timeout ?? this.config.stopTimeout;
    await this.kill(options.signal ?? this.config.stopSignal);
    const exited = this.wait();
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeout * 1000)))]);
    clearTimeout(timer);
    if (late) await this.kill('SIGKILL');
    const result = await exited;
    this.emit('stop');
    return result;
  }

  /** Stops (if running) and starts the container again, keeping its filesystem. */
  async restart(options: { timeout?: number } = {}): Promise<void> {
    await this.stop(options);
    this.writeState({ restartCount: this.state.restartCount + 1 });
    await this.start();
    this.emit('restart');
  }

  /**
   * Removes the container, its filesystem changes, logs and cgroup (`docker rm`).
   * A running container is refused unless `force`, which kills it first.
   */
  async remove(options: { force?: boolean } = {}): Promise<void> {
    if (this.removed) return;
    if (this.starting) await this.starting.catch(() => undefined);
    if (this.isRunning) {
      if (!options.force) throw new ContainerStateError(this.name, 'running', 'remove (stop it first, or use force)');
      await this.kill('SIGKILL').catch(() => undefined);
      await this.wait();
    }
    if (this.removed) return;
    this.removed = true;
    this.ctx.cgroups.open(this.id)?.destroy();
    native.unmount(join(this.dir, 'rootfs'));
    this.ctx.records.remove(this.id, this.name);
    this.ctx.forget(this.id);
    this.emit('destroy');
  }

  /**
   * Runs a command in the running container (`docker exec`): it joins the
   * container's namespaces and cgroup with the same security setup, and the
   * call resolves with its exit code and output. A command that is not found
   * rejects with {@link CommandNotFoundError}.
   */
  async exec(cmd: string[], options: ExecOptions = {}): Promise<ExecResult> {
    if (!Array.isArray(cmd) || cmd.length === 0 || cmd.some((a) => typeof a !== 'string')) {
      throw new DocklessError('exec needs a non-empty array of strings', 'ERR_INVALID_OPTION');
    }
    const run = this.running;
    if (!run) throw new ContainerStateError(this.name, this.isRunning ? 'owned by another process' : this.state.status, 'exec into');
    const c = this.config;
    const upper = join(this.dir, 'upper');
    const user = resolveUser(options.user ?? c.user, [upper, ...this.ctx.layerDirs(c.imageId)]);
    const extra = Array.isArray(options.env) ? options.env : Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
    const env = [...c.env.filter((e) => !extra.some((x) => x.split('=')[0] === e.split('=')[0])), ...extra];
    if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home}`);
    const collect = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const order: Buffer[] = [];
    const stdio = makeStdio({ tty: false, openStdin: options.stdin !== undefined, collect });
    stdio.stdout.on('data', (b: Buffer) => order.push(b));
    stdio.stderr.on('data', (b: Buffer) => order.push(b));
    const execId = randomBytes(8).toString('hex');
    const placement = run.cgroup.placement();
    let onExit!: (e: NativeExit) => void;
    const exited = new Promise<NativeExit>((r) => (onExit = r));
    let proc: NativeProcess | undefined;
    let started: Promise<void>;
    try {
      ({ process: proc, started } = native.spawn(
        joinSpec({ config: c, target: run.process, argv: cmd, env, cwd: options.workdir ?? c.workdir, user, tty: false, stdio: stdio.childFds, cgroup: placement.spec }),
        onExit,
      ));
    } catch (err) {
      stdio.closeChildSide();
      stdio.destroy();
      throw err;
    } finally {
      placement.release();
    }
    stdio.closeChildSide();
    native.ref(proc, true);
    this.emit('exec_start', { execId });
    try {
      await started;
    } catch (err) {
      await exited;
      stdio.destroy();
      throw translateStartError(err, cmd[0]!);
    }
    if (options.stdin !== undefined) stdio.stdin?.end(options.stdin);
    const onAbort = () => {
      try {
        native.signal(proc!, 9);
      } catch {
        /* gone */
      }
    };
    options.signal?.addEventListener('abort', onAbort);
    try {
      const exit = await exited;
      await stdio.drained;
      const exitCode = exit.exitCode ?? 128 + (exit.signal ?? 0);
      this.emit('exec_die', { execId, exitCode: String(exitCode) });
      options.signal?.throwIfAborted();
      return {
        exitCode,
        stdout: Buffer.concat(collect.stdout).toString(),
        stderr: Buffer.concat(collect.stderr).toString(),
        output: Buffer.concat(order).toString(),
      };
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** The container's output so far (`docker logs`), as text. */
  async logs(options: LogOptions = {}): Promise<string> {
    const { entries } = await readLog(this.logPath, options);
    return formatLog(entries, options.timestamps);
  }

  /**
   * Follows the output (`docker logs -f`): yields past lines (per `tail`) and
   * then new ones until the container stops or `signal` aborts.
   */
  async *followLogs(options: LogOptions & { signal?: AbortSignal } = {}): AsyncGenerator<LogEntry> {
    const keep = logFilter(options);
    const run = this.running;
    if (run && !run.log.isClosed) {
      // Subscribe before reading the file so no line falls between the two.
      const queue: LogEntry[] = [];
      let wake: (() => void) | undefined;
      let closed = false;
      const onEntry = (e: LogEntry) => {
        queue.push(e);
        wake?.();
      };
      const onClose = () => {
        closed = true;
        wake?.();
      };
      run.log.on('entry', onEntry);
      run.log.on('close', onClose);
      const onAbort = () => wake?.();
      options.signal?.addEventListener('abort', onAbort);
      try {
        const seen = queue.length;
        const { entries } = await readLog(this.logPath, options);
        // Lines that arrived during the read are both in the file and in the queue.
        const fresh = queue.splice(0);
        const past = entries.slice(0, Math.max(0, entries.length - (fresh.length - seen)));
        for (const e of [...past, ...fresh.filter(keep)]) yield e;
        for (;;) {
          while (queue.length) {
            const e = queue.shift()!;
            if (keep(e)) yield e;
          }
          if (closed || options.signal?.aborted) return;
          await new Promise<void>((r) => (wake = r));
          wake = undefined;
        }
      } finally {
        run.log.off('entry', onEntry);
        run.log.off('close', onClose);
        options.signal?.removeEventListener('abort', onAbort);
      }
    }
    const { entries, offset } = await readLog(this.logPath, options);
    for (const e of entries) yield e;
    yield* tailLogFile(this.logPath, offset, keep, () => !this.isRunning, options.signal);
  }

  /** Resizes the terminal of a container created with `tty`. */
  resize(rows: number, cols: number): void {
    const fd = this.running?.stdio.ptyMaster;
    if (fd === undefined) throw new ContainerStateError(this.name, 'not running with a tty', 'resize');
    native.resizePty(fd, rows, cols);
  }

  /** Docker-style details of the container (`docker inspect`). */
  inspect(): ContainerInspect {
    const c = this.config;
    const s = this.state;
    const dir = this.dir;
    const l = c.limits;
    return {
      Id: c.id,
      Name: `/${c.name}`,
      Created: c.created,
      Path: [...c.entrypoint, ...c.cmd][0] ?? '',
      Args: [...c.entrypoint, ...c.cmd].slice(1),
      Image: c.imageId,
      State: {
        Status: s.status,
        Running: s.status === 'running',
        Paused: false,
        Restarting: false,
        OOMKilled: s.oomKilled ?? false,
        Dead: s.status === 'dead',
        Pid: s.status === 'running' ? s.pid ?? 0 : 0,
        ExitCode: s.exitCode ?? 0,
        Error: s.error ?? '',
        StartedAt: s.startedAt ?? '0001-01-01T00:00:00Z',
        FinishedAt: s.finishedAt ?? '0001-01-01T00:00:00Z',
      },
      RestartCount: s.restartCount,
      LogPath: this.logPath,
      Config: {
        Hostname: c.hostname,
        User: c.user,
        Env: c.env,
        Cmd: c.cmd,
        Entrypoint: c.entrypoint,
        Image: c.image,
        WorkingDir: c.workdir,
        Labels: c.labels,
        Tty: c.tty,
        OpenStdin: c.openStdin,
        StopSignal: signalName(c.stopSignal),
        StopTimeout: c.stopTimeout,
      },
      HostConfig: {
        AutoRemove: c.autoRemove,
        NetworkMode: c.network,
        ReadonlyRootfs: c.readonlyRootfs,
        Memory: l.memory ?? 0,
        MemorySwap: l.memorySwap ?? 0,
        NanoCpus: l.cpuQuota ? Math.round((l.cpuQuota / (l.cpuPeriod ?? 100_000)) * 1e9) : 0,
        CpuQuota: l.cpuQuota ?? 0,
        CpuPeriod: l.cpuPeriod ?? 0,
        CpuShares: l.cpuShares ?? 0,
        CpusetCpus: l.cpusetCpus ?? '',
        PidsLimit: l.pidsLimit ?? 0,
        Binds: c.mounts.filter((m) => m.type === 'bind').map((m) => `${m.source}:${m.target}${m.readonly ? ':ro' : ''}`),
      },
      GraphDriver: {
        Name: 'overlay',
        Data: {
          LowerDir: this.ctx.layerDirs(c.imageId).join(':'),
          UpperDir: join(dir, 'upper'),
          WorkDir: join(dir, 'work'),
          MergedDir: join(dir, 'rootfs'),
        },
      },
      Mounts: c.mounts.map((m) => ({ Type: m.type, Source: m.type === 'volume' ? this.ctx.volumePath(m.source) : m.source, Destination: m.target, RW: !m.readonly })),
    };
  }

  /** Kills the running process without waiting; used when the engine closes. @internal */
  killNow(): Promise<ExitResult> | undefined {
    if (!this.running) return undefined;
    try {
      native.signal(this.running.process, 9);
    } catch {
      /* gone */
    }
    return this.running.exited;
  }

  /** Removes the container forcefully (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.remove({ force: true });
  }
}

/** Makes the directories and /etc files of a new container. @internal */
export function prepareContainerDir(dir: string, hostname: string, network: 'none' | 'host'): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // The merged root takes the upper dir's mode and owner: 0755 like Docker's
  // overlay2 diff dirs, or nobody but root could reach /bin. The container
  // dir above stays 0700.
  for (const d of ['upper', 'work', 'rootfs']) {
    mkdirSync(join(dir, d), { recursive: true, mode: 0o755 });
    chmodSync(join(dir, d), 0o755);
  }
  writeFileSync(join(dir, 'hostname'), `${hostname}\n`);
  const hostsBase = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n';
  writeFileSync(join(dir, 'hosts'), network === 'host' ? readHostFile('/etc/hosts', hostsBase) : `${hostsBase}127.0.1.1\t${hostname}\n`);
  writeFileSync(join(dir, 'resolv.conf'), readHostFile('/etc/resolv.conf', ''));
}

function readHostFile(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

function readPidStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function translateStartError(err: unknown, command: string): Error {
  if (err instanceof ContainerStartError && err.step === 'execve' && (err.errno === 2 || err.errno === 20)) {
    return new CommandNotFoundError(command, err.errno);
  }
  return err instanceof Error ? err : new DocklessError(String(err));
}

function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
