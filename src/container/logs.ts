import { closeSync, createReadStream, openSync, readSync, statSync, watch, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { EventEmitter } from 'eventemitter3';

/** One line of a container's output, as kept in Docker's json-file log format. */
export interface LogEntry {
  stream: 'stdout' | 'stderr';
  /** The line, without its trailing newline. */
  line: string;
  /** When the engine read it. */
  time: Date;
}

/** Options for {@link Container.logs} and {@link Container.followLogs}, as `docker logs`. */
export interface LogOptions {
  stdout?: boolean;
  stderr?: boolean;
  /** Only the last N lines (`'all'` for every line). */
  tail?: number | 'all';
  /** Only lines at or after this time (a Date, or seconds since the epoch). */
  since?: Date | number;
  /** Only lines before this time. */
  until?: Date | number;
  /** Prefix each line with its RFC 3339 time (text output only). */
  timestamps?: boolean;
}

// Docker cuts lines longer than 16 KiB into partial entries; so do we, so a
// process that never prints a newline cannot make the logger buffer forever.
const MAX_LINE = 16 * 1024;

/**
 * Writes a container's output as Docker's json-file log (`{"log":…,"stream":…,"time":…}`
 * per line) and announces each entry to in-process followers.
 * @internal
 */
export class LogWriter extends EventEmitter<{ entry: [LogEntry]; close: [] }> {
  private fd: number;
  private readonly partial = { stdout: '', stderr: '' };
  private closed = false;

  constructor(readonly path: string) {
    super();
    this.fd = openSync(path, 'a');
  }

  /** Feeds a chunk of a stream; complete lines are written at once. */
  write(stream: 'stdout' | 'stderr', chunk: Buffer | string): void {
    if (this.closed) return;
    let text = this.partial[stream] + chunk.toString();
    let nl: number;
    while ((nl = text.indexOf('\n')) !== -1) {
      this.emitLine(stream, text.slice(0, nl + 1));
      text = text.slice(nl + 1);
    }
    while (text.length >= MAX_LINE) {
      this.emitLine(stream, text.slice(0, MAX_LINE));
      text = text.slice(MAX_LINE);
    }
    this.partial[stream] = text;
  }

  /** Flushes what is left of unterminated lines. */
  flush(stream: 'stdout' | 'stderr'): void {
    if (this.partial[stream]) this.emitLine(stream, this.partial[stream]);
    this.partial[stream] = '';
  }

  close(): void {
    if (this.closed) return;
    this.flush('stdout');
    this.flush('stderr');
    this.closed = true;
    closeSync(this.fd);
    this.emit('close');
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private emitLine(stream: 'stdout' | 'stderr', raw: string): void {
    const time = new Date();
    writeSync(this.fd, JSON.stringify({ log: raw, stream, time: time.toISOString() }) + '\n');
    this.emit('entry', { stream, line: raw.endsWith('\n') ? raw.slice(0, -1) : raw, time });
  }
}

function toDate(t: Date | number | undefined): Date | undefined {
  return t === undefined ? undefined : t instanceof Date ? t : new Date(t * 1000);
}

/** A filter built from {@link LogOptions}. @internal */
export function logFilter(opts: LogOptions): (e: LogEntry) => boolean {
  const since = toDate(opts.since);
  const until = toDate(opts.until);
  const out = opts.stdout ?? true;
  const err = opts.stderr ?? true;
  return (e) =>
    (e.stream === 'stdout' ? out : err) && (!since || e.time >= since) && (!until || e.time < until);
}

function parseLine(text: string): LogEntry | undefined {
  try {
    const j = JSON.parse(text) as { log: string; stream: 'stdout' | 'stderr'; time: string };
    return { stream: j.stream, line: j.log.endsWith('\n') ? j.log.slice(0, -1) : j.log, time: new Date(j.time) };
  } catch {
    return undefined; // a torn last line while the writer appends
  }
}

/** Reads the entries of a json-file log, filtered and tailed. @internal */
export async function readLog(path: string, opts: LogOptions): Promise<{ entries: LogEntry[]; offset: number }> {
  const keep = logFilter(opts);
  let entries: LogEntry[] = [];
  let offset = 0;
  try {
    offset = statSync(path).size;
  } catch {
    return { entries, offset };
  }
  const rl = createInterface({ input: createReadStream(path, { end: Math.max(0, offset - 1) }), crlfDelay: Infinity });
  for await (const text of rl) {
    const e = parseLine(text);
    if (e && keep(e)) entries.push(e);
  }
  if (typeof opts.tail === 'number') entries = opts.tail === 0 ? [] : entries.slice(-opts.tail);
  return { entries, offset };
}

/** Formats entries as `docker logs` prints them. @internal */
export function formatLog(entries: LogEntry[], timestamps = false): string {
  return entries.map((e) => (timestamps ? `${e.time.toISOString()} ${e.line}\n` : `${e.line}\n`)).join('');
}

/**
 * Follows a json-file log written by another process: reads appended entries as the file
 * grows (fs.watch), until `done()` says the writer has stopped and all is read.
 * @internal
 */
export async function* tailLogFile(
  path: string,
  offset: number,
  keep: (e: LogEntry) => boolean,
  done: () => boolean,
  signal?: AbortSignal,
): AsyncGenerator<LogEntry> {
  let pending = '';
  let wake: (() => void) | undefined;
  const watcher = watch(path, () => wake?.());
  const onAbort = () => wake?.();
  signal?.addEventListener('abort', onAbort);
  try {
    for (;;) {
      const fd = openSync(path, 'r');
      try {
        const buf = Buffer.alloc(64 * 1024);
        let n: number;
        while ((n = readSync(fd, buf, 0, buf.length, offset)) > 0) {
          offset += n;
          pending += buf.subarray(0, n).toString();
          let nl: number;
          while ((nl = pending.indexOf('\n')) !== -1) {
            const e = parseLine(pending.slice(0, nl));
            pending = pending.slice(nl + 1);
            if (e && keep(e)) yield e;
          }
        }
      } finally {
        closeSync(fd);
      }
      if (signal?.aborted || done()) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, 250).unref(); // a watch event can be missed across an open/close race
      });
    }
  } finally {
    watcher.close();
    signal?.removeEventListener('abort', onAbort);
  }
}
