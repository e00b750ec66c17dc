import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { DocklessError } from '../errors.js';
import type { LogEntry } from './logs.js';

/** What a wait strategy may look at. {@link Container} implements it. */
export interface WaitTarget {
  readonly id: string;
  /** Host pid of the container's first process, or undefined when it is not running. */
  readonly pid: number | undefined;
  /** True while the container's first process runs. */
  readonly isRunning: boolean;
  followLogs(options?: { signal?: AbortSignal; tail?: number | 'all' }): AsyncIterable<LogEntry>;
  exec(cmd: string[]): Promise<{ exitCode: number }>;
  wait(): Promise<{ exitCode: number | null }>;
}

/**
 * Decides when a started container is ready for use; `run` awaits it before it
 * resolves. Implement it for readiness checks of your own.
 */
export interface WaitStrategy {
  /** Resolves once ready; rejects (or is aborted through `signal`) otherwise. */
  waitUntilReady(container: WaitTarget, signal: AbortSignal): Promise<void>;
  /** How long `run` lets the strategy take, in milliseconds (default 60 000). */
  readonly startupTimeoutMs?: number;
}

/** A container did not become ready in time, or stopped before it did. */
export class ContainerNotReadyError extends DocklessError {
  constructor(message: string) {
    super(message, 'ERR_CONTAINER_NOT_READY');
  }
}

/** What every ready-made strategy shares: a startup timeout, set builder-style. */
export abstract class BaseStrategy implements WaitStrategy {
  startupTimeoutMs = 60_000;
  /** Sets how long `run` lets this strategy take. */
  withStartupTimeout(ms: number): this {
    this.startupTimeoutMs = ms;
    return this;
  }
  abstract waitUntilReady(container: WaitTarget, signal: AbortSignal): Promise<void>;
}

/** Ready once a log line contains a text (or matches a RegExp) `times` times. */
export class LogMessageStrategy extends BaseStrategy {
  constructor(
    private readonly message: string | RegExp,
    private readonly times: number,
  ) {
    super();
  }
  async waitUntilReady(container: WaitTarget, signal: AbortSignal): Promise<void> {
    let seen = 0;
    for await (const entry of container.followLogs({ signal, tail: 'all' })) {
      const line = entry.line;
      const hit = typeof this.message === 'string' ? line.includes(this.message) : this.message.test(line);
      if (hit && ++seen >= this.times) return;
    }
    signal.throwIfAborted();
    throw new ContainerNotReadyError(`container ${container.id.slice(0, 12)} stopped before logging ${String(this.message)}`);
  }
}

/** Ready once a command exec'd in the container exits 0. */
export class SuccessfulCommandStrategy extends BaseStrategy {
  constructor(private readonly cmd: string[]) {
    super();
  }
  async waitUntilReady(container: WaitTarget, signal: AbortSignal): Promise<void> {
    for (;;) {
      signal.throwIfAborted();
      if (!container.isRunning) throw new ContainerNotReadyError(`container ${container.id.slice(0, 12)} stopped before ${this.cmd.join(' ')} succeeded`);
      const { exitCode } = await container.exec(this.cmd).catch(() => ({ exitCode: -1 }));
      if (exitCode === 0) return;
      await sleep(100, undefined, { signal });
    }
  }
}

/** Ready once the container listens on every given TCP port. */
export class ListeningPortStrategy extends BaseStrategy {
  constructor(private readonly ports: number[]) {
    super();
  }
  async waitUntilReady(container: WaitTarget, signal: AbortSignal): Promise<void> {
    for (;;) {
      signal.throwIfAborted();
      const pid = container.pid;
      if (pid === undefined) throw new ContainerNotReadyError(`container ${container.id.slice(0, 12)} stopped before listening`);
      // /proc/PID/net/* shows the sockets of that process's network namespace, so
      // readiness is read from the host without exec'ing anything in the container.
      const listening = listeningPorts(pid);
      if (this.ports.every((p) => listening.has(p))) return;
      await sleep(50, undefined, { signal });
    }
  }
}

/** Ready once the container has exited with 0 (for one-shot jobs). */
export class OneShotStrategy extends BaseStrategy {
  async waitUntilReady(container: WaitTarget): Promise<void> {
    const { exitCode } = await container.wait();
    if (exitCode !== 0) throw new ContainerNotReadyError(`container ${container.id.slice(0, 12)} exited with ${exitCode}`);
  }
}

/** Ports in LISTEN state in the network namespace of `pid`. @internal */
export function listeningPorts(pid: number): Set<number> {
  const ports = new Set<number>();
  for (const file of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === '0A') ports.add(parseInt(cols[1]!.split(':')[1]!, 16));
    }
  }
  return ports;
}

/** Ready-made wait strategies, as in testcontainers: `run({ …, waitStrategy: Wait.forLogMessage('ready') })`. */
export const Wait = {
  /** Ready once a log line contains `message` (or matches it), `times` times. */
  forLogMessage(message: string | RegExp, times = 1) {
    return new LogMessageStrategy(message, times);
  },
  /** Ready once `cmd` exits 0 when exec'd in the container (polled). */
  forSuccessfulCommand(cmd: string[]) {
    return new SuccessfulCommandStrategy(cmd);
  },
  /** Ready once every port listens on TCP inside the container's network namespace. */
  forListeningPorts(...ports: number[]) {
    return new ListeningPortStrategy(ports);
  },
  /** Ready once the container has exited with code 0 (for one-shot jobs). */
  forOneShotStartup() {
    return new OneShotStrategy();
  },
};
