import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { ReadStream, WriteStream } from 'node:tty';
import { native } from '../isolation/native.js';
import type { LogWriter } from './logs.js';

// A live stream nobody reads must not grow without bound: past this, chunks are
// dropped from the live stream (the json-file log still has every byte).
const LIVE_BUFFER_CAP = 1 << 20;

/** The host side of a process's stdio, and the fds its child side hands to spawn. @internal */
export interface StdioPlumbing {
  /** fds for the child's 0, 1, 2 (closed in the parent by {@link closeChildSide}). */
  childFds: [number, number, number];
  stdout: Readable;
  stderr: Readable;
  stdin: Writable | undefined;
  /** Settles once every output stream reached EOF (the last holder of the write ends exited). */
  drained: Promise<void>;
  closeChildSide(): void;
  /** Closes the host side early (start failed). */
  destroy(): void;
  /** For a tty: the master fd, for resizing. */
  ptyMaster?: number;
  /** For a tty: the console's devpts instance, to attach at /dev/pts (closed by {@link closeChildSide}). */
  consoleMount?: number;
}

function liveStream(): PassThrough {
  return new PassThrough();
}

function feed(live: PassThrough, chunk: Buffer): void {
  if (live.readableLength < LIVE_BUFFER_CAP) live.write(chunk);
}

/**
 * Sets up pipes (or a pseudo-terminal) for a process. Output goes both to the
 * json-file log (when given) and to live streams; pipes are read through libuv
 * (net.Socket over the fd), never with blocking reads.
 * @internal
 */
export function makeStdio(opts: { tty: boolean; openStdin: boolean; log?: LogWriter; collect?: { stdout: Buffer[]; stderr: Buffer[] } }): StdioPlumbing {
  const stdout = liveStream();
  const stderr = liveStream();
  const onData = (name: 'stdout' | 'stderr', live: PassThrough) => (chunk: Buffer) => {
    opts.log?.write(name, chunk);
    opts.collect?.[name].push(chunk);
    feed(live, chunk);
  };

  if (opts.tty) {
    const { mount, master, slave } = native.openConsole(24, 80);
    const reader = new ReadStream(master);
    let writer: WriteStream | undefined;
    if (opts.openStdin) writer = new WriteStream(master);
    reader.on('data', onData('stdout', stdout));
    const drained = new Promise<void>((resolve) => {
      const end = () => {
        opts.log?.flush('stdout');
        stdout.end();
        stderr.end();
        resolve();
      };
      reader.on('end', end);
      // A pty master reads EIO once the last slave holder is gone: that is its EOF.
      reader.on('error', end);
      reader.on('close', end);
    });
    return {
      childFds: [slave, slave, slave],
      stdout,
      stderr,
      stdin: writer,
      drained,
      ptyMaster: master,
      consoleMount: mount,
      closeChildSide: () => {
        closeSync(slave);
        closeSync(mount);
      },
      destroy: () => {
        reader.destroy();
        writer?.destroy();
      },
    };
  }

  const [outR, outW] = native.pipe();
  const [errR, errW] = native.pipe();
  let inR: number;
  let stdin: Socket | undefined;
  if (opts.openStdin) {
    const [r, w] = native.pipe();
    inR = r;
    stdin = new Socket({ fd: w, readable: false, writable: true });
    stdin.on('error', () => undefined); // EPIPE once the process is gone
  } else {
    inR = openSync('/dev/null', 'r');
  }
  const outSock = new Socket({ fd: outR, readable: true, writable: false });
  const errSock = new Socket({ fd: errR, readable: true, writable: false });
  const ended = (sock: Socket, name: 'stdout' | 'stderr', live: PassThrough) =>
    new Promise<void>((resolve) => {
      sock.on('data', onData(name, live));
      sock.on('error', () => undefined);
      sock.on('close', () => {
        opts.log?.flush(name);
        live.end();
        resolve();
      });
    });
  const drained = Promise.all([ended(outSock, 'stdout', stdout), ended(errSock, 'stderr', stderr)]).then(() => undefined);
  return {
    childFds: [inR, outW, errW],
    stdout,
    stderr,
    stdin,
    drained,
    closeChildSide: () => {
      closeSync(inR);
      closeSync(outW);
      closeSync(errW);
    },
    destroy: () => {
      outSock.destroy();
      errSock.destroy();
      stdin?.destroy();
    },
  };
}
