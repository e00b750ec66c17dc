/**
 * A streaming tar reader and header writer (ustar, GNU long names, PAX).
 *
 * tar-stream 3 decodes PAX values as UTF-8, which corrupts binary
 * `SCHILY.xattr.*` values such as `security.capability` (a file capability
 * holding CAP_SETUID has a 0x80 byte), and cannot write them either. Layer
 * contents must round-trip byte for byte, so this module keeps PAX values as raw
 * bytes. It follows Go's archive/tar (what Docker and containerd use) where
 * formats disagree: header-only types carry no body whatever their size field
 * says, global PAX headers are not applied, a missing end-of-archive marker is
 * accepted.
 *
 * Nothing is buffered beyond one header or one chunk of file data.
 * @module
 */

import { DocklessError, UnsupportedError } from '../errors.js';

/** The kinds of entries a layer may hold. */
export type TarEntryType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

/** A decoded tar header, with PAX and GNU extensions applied. */
export interface TarHeader {
  /** Entry name as stored (not yet cleaned): `usr/bin/`, `./etc/passwd`, `/abs`. */
  name: string;
  type: TarEntryType;
  /** Permission bits including setuid, setgid and sticky (`mode & 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
  /** Body size in bytes; 0 for every type but `file`. */
  size: number;
  /** Modification time in seconds since the epoch (PAX may give fractions). */
  mtime: number;
  /** Access time in seconds, when a PAX header gave one. */
  atime?: number;
  /** Target of a hard link (a name in the archive) or of a symlink (stored as-is). */
  linkname: string;
  devmajor: number;
  devminor: number;
  uname: string;
  gname: string;
  /** Extended attributes from `SCHILY.xattr.*` / `LIBARCHIVE.xattr.*` PAX records, values as raw bytes. */
  xattrs: Map<string, Buffer>;
}

/** One entry: its header and a body that must be read to the end or abandoned before the next entry is asked for. */
export interface TarEntry {
  header: TarHeader;
  body: AsyncIterable<Buffer>;
}

/** The archive is not a well-formed tar stream. */
export class TarFormatError extends DocklessError {
  constructor(message: string) {
    super(`invalid tar archive: ${message}`, 'ERR_INVALID_TAR');
  }
}

const BLOCK = 512;
const MAX_META = 1 << 20; // largest PAX / GNU long-name body we accept
const utf8 = new TextDecoder('utf-8');

function cstring(buf: Buffer, off: number, len: number): Buffer {
  const field = buf.subarray(off, off + len);
  const nul = field.indexOf(0);
  return nul === -1 ? field : field.subarray(0, nul);
}

/** A NUL-terminated text field, UTF-8. */
function text(buf: Buffer, off: number, len: number): string {
  // Most names are ASCII: read those without a view object and a decoder call.
  const end = off + len;
  let i = off;
  while (i < end && buf[i]! !== 0 && buf[i]! < 0x80) i++;
  if (i === end || buf[i] === 0) return buf.toString('latin1', off, i);
  return utf8.decode(cstring(buf, off, len));
}

/**
 * An octal field of the common shape: NULs or spaces, octal digits, then a
 * NUL, or only spaces and NULs to the end. -1 for anything else, which
 * {@link numeric} then reads the slow way (and names in its error).
 */
function plainOctal(buf: Buffer, off: number, len: number): number {
  const end = off + len;
  let i = off;
  while (i < end && (buf[i] === 0 || buf[i] === 0x20)) i++;
  let v = 0;
  for (; i < end; i++) {
    const b = buf[i]!;
    if (b < 0x30 || b > 0x37) break;
    v = v * 8 + (b - 0x30);
  }
  if (i === end || buf[i] === 0) return v;
  if (buf[i] !== 0x20) return -1;
  for (; i < end; i++) if (buf[i] !== 0 && buf[i] !== 0x20) return -1;
  return v;
}

/** A numeric header field: octal text, or base-256 when the high bit of the first byte is set (GNU). */
function numeric(buf: Buffer, off: number, len: number, field: string): number {
  if (!(buf[off]! & 0x80)) {
    const plain = plainOctal(buf, off, len);
    if (plain >= 0) return plain;
  }
  const f = buf.subarray(off, off + len);
  if (f[0]! & 0x80) {
    if (f[0] === 0xff) throw new TarFormatError(`negative ${field}`);
    let v = f[0]! & 0x7f;
    for (let i = 1; i < f.length; i++) {
      v = v * 256 + f[i]!;
      if (v > Number.MAX_SAFE_INTEGER) throw new TarFormatError(`${field} too large`);
    }
    return v;
  }
  const s = f.toString('latin1').replace(/[\0 ]+$/, '').replace(/^[\0 ]+/, '').replace(/\0.*$/s, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`bad ${field} field ${JSON.stringify(s)}`);
  return parseInt(s, 8);
}

function checksumOk(block: Buffer): boolean {
  // The checksum field counts as eight spaces.
  let unsigned = 8 * 32;
  let high = 0;
  for (let i = 0; i < BLOCK; i++) {
    if (i === 148) i = 156;
    const b = block[i]!;
    unsigned += b;
    if (b > 127) high++;
  }
  const stored = numeric(block, 148, 8, 'checksum');
  return stored === unsigned || stored === unsigned - 256 * high;
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

/** Parses PAX records (`"%d %s=%s\n"`), keeping values as raw bytes. */
function parsePax(buf: Buffer): Map<string, Buffer> {
  const records = new Map<string, Buffer>();
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] === 0) break; // NUL padding after the last record
    const sp = buf.indexOf(0x20, pos);
    if (sp === -1) throw new TarFormatError('bad PAX record');
    const lenText = buf.toString('latin1', pos, sp);
    if (!/^[0-9]+$/.test(lenText)) throw new TarFormatError('bad PAX record length');
    const len = parseInt(lenText, 10);
    const end = pos + len;
    if (len <= sp - pos + 1 || end > buf.length || buf[end - 1] !== 0x0a) throw new TarFormatError('bad PAX record');
    const eq = buf.indexOf(0x3d, sp + 1);
    if (eq === -1 || eq >= end) throw new TarFormatError('bad PAX record');
    records.set(utf8.decode(buf.subarray(sp + 1, eq)), buf.subarray(eq + 1, end - 1));
    pos = end;
  }
  return records;
}

function paxNumber(value: Buffer, key: string): number {
  const s = value.toString('latin1');
  if (!/^-?[0-9]+(\.[0-9]+)?$/.test(s)) throw new TarFormatError(`bad PAX ${key} ${JSON.stringify(s)}`);
  const n = Number(s);
  if (!Number.isFinite(n) || Math.abs(n) > Number.MAX_SAFE_INTEGER) throw new TarFormatError(`bad PAX ${key}`);
  return n;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'link',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  '6': 'fifo',
};

const padding = (n: number) => (BLOCK - (n % BLOCK)) % BLOCK;

/** Where {@link TarParser} hands what it reads, synchronously and in archive order. */
export interface TarSink {
  /** The header of the next entry; its body (files only) follows as `data` calls. */
  entry(header: TarHeader): void;
  /** The next bytes of the current entry's body: a view into the input chunk, valid during the call. */
  data(chunk: Buffer): void;
  /** The current entry is complete (called for every entry, with or without a body). */
  entryEnd(): void;
}

/**
 * A tar parser fed chunk by chunk that calls its sink synchronously: no
 * promise per entry or per body chunk, and file data handed on as views into
 * the input (never copied). Only a header or a PAX / long-name body split
 * across two chunks is gathered into a buffer of its own.
 *
 * Errors are thrown by {@link push} (or {@link end}) after the sink has had
 * every entry before the bad one.
 * @internal
 */
export class TarParser {
  private state: 'header' | 'meta' | 'body' | 'padding' | 'done' = 'header';
  /** A header or meta body being gathered across chunks, and how much of it is in. */
  private gather: Buffer | null = null;
  private gathered = 0;
  /** For `body` and `padding`: bytes left of it. */
  private remaining = 0;
  private bodyPadding = 0;
  /** For `meta`: its flag and the size without padding. */
  private metaFlag = '';
  private metaSize = 0;
  private pax: Map<string, Buffer> | null = null;
  private longName: string | null = null;
  private longLink: string | null = null;

  constructor(private readonly sink: TarSink) {}

  /** True once the end-of-archive marker was read (the rest of the input is ignored). */
  get finished(): boolean {
    return this.state === 'done';
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n && this.state !== 'done') {
      if (this.state === 'body') {
        const k = Math.min(this.remaining, n - pos);
        this.remaining -= k;
        this.sink.data(chunk.subarray(pos, pos + k));
        pos += k;
        if (this.remaining === 0) this.endBody();
      } else if (this.state === 'padding') {
        const k = Math.min(this.remaining, n - pos);
        this.remaining -= k;
        pos += k;
        if (this.remaining === 0) this.state = 'header';
      } else {
        // A header or a meta body: whole from the chunk when it fits, else gathered.
        const need = this.state === 'header' ? BLOCK : this.metaSize + padding(this.metaSize);
        let block: Buffer;
        if (this.gather === null && n - pos >= need) {
          block = chunk.subarray(pos, pos + need);
          pos += need;
        } else {
          this.gather ??= Buffer.allocUnsafe(need);
          const k = Math.min(need - this.gathered, n - pos);
          chunk.copy(this.gather, this.gathered, pos, pos + k);
          this.gathered += k;
          pos += k;
          if (this.gathered < need) continue;
          block = this.gather;
          this.gather = null;
          this.gathered = 0;
        }
        if (this.state === 'header') this.header(block);
        else this.meta(block.subarray(0, this.metaSize));
      }
    }
  }

  /** The input ended: fine after the end marker or between entries (no marker, as Go accepts). */
  end(): void {
    if (this.state === 'done' || (this.state === 'header' && this.gathered === 0)) return;
    throw new TarFormatError('unexpected end of archive');
  }

  private endBody(): void {
    this.sink.entryEnd();
    this.remaining = this.bodyPadding;
    this.state = this.remaining > 0 ? 'padding' : 'header';
  }

  private meta(data: Buffer): void {
    const flag = this.metaFlag;
    // The gathered buffer is not reused, so views into it stay valid.
    if (flag === 'x') this.pax = parsePax(data);
    else if (flag === 'L') this.longName = utf8.decode(cstring(data, 0, data.length));
    else if (flag === 'K') this.longLink = utf8.decode(cstring(data, 0, data.length));
    // 'g' (global PAX) is skipped, as Docker and containerd do.
    this.state = 'header';
  }

  private header(block: Buffer): void {
    if (isZeroBlock(block)) {
      this.state = 'done';
      return;
    }
    if (!checksumOk(block)) throw new TarFormatError('header checksum mismatch (is it a tar archive?)');

    const flag = String.fromCharCode(block[156]!);
    const rawSize = numeric(block, 124, 12, 'size');

    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (rawSize > MAX_META) throw new TarFormatError(`${flag} header of ${rawSize} bytes is too large`);
      this.metaFlag = flag;
      this.metaSize = rawSize;
      if (rawSize === 0) this.meta(Buffer.alloc(0));
      else this.state = 'meta';
      return;
    }

    let type = TYPES[flag];
    const magic = block.toString('latin1', 257, 263);
    let name = text(block, 0, 100);
    if (magic === 'ustar\0' && block[345] !== 0) name = `${text(block, 345, 155)}/${name}`;
    if (type === undefined) {
      if (flag === 'S' || flag === 'D' || flag === 'M' || flag === 'N' || flag === 'V') {
        throw new UnsupportedError(`tar entry ${JSON.stringify(name)} has GNU type '${flag}', which layers cannot hold`);
      }
      throw new TarFormatError(`entry ${JSON.stringify(name)} has unknown type ${JSON.stringify(flag)}`);
    }

    const header: TarHeader = {
      name,
      type,
      mode: numeric(block, 100, 8, 'mode') & 0o7777,
      uid: numeric(block, 108, 8, 'uid'),
      gid: numeric(block, 116, 8, 'gid'),
      size: rawSize,
      mtime: numeric(block, 136, 12, 'mtime'),
      linkname: text(block, 157, 100),
      uname: text(block, 265, 32),
      gname: text(block, 297, 32),
      devmajor: numeric(block, 329, 8, 'devmajor'),
      devminor: numeric(block, 337, 8, 'devminor'),
      xattrs: new Map(),
    };
    if (this.longName !== null) header.name = this.longName;
    if (this.longLink !== null) header.linkname = this.longLink;
    const pax = this.pax;
    if (pax) {
      for (const [key, value] of pax) {
        if (key === 'path') header.name = utf8.decode(value);
        else if (key === 'linkpath') header.linkname = utf8.decode(value);
        else if (key === 'size') header.size = paxNumber(value, key);
        else if (key === 'uid') header.uid = paxNumber(value, key);
        else if (key === 'gid') header.gid = paxNumber(value, key);
        else if (key === 'mtime') header.mtime = paxNumber(value, key);
        else if (key === 'atime') header.atime = paxNumber(value, key);
        else if (key === 'uname') header.uname = utf8.decode(value);
        else if (key === 'gname') header.gname = utf8.decode(value);
        else if (key.startsWith('SCHILY.xattr.')) header.xattrs.set(key.slice(13), value);
        else if (key.startsWith('LIBARCHIVE.xattr.')) {
          header.xattrs.set(decodeURIComponent(key.slice(17)), Buffer.from(value.toString('latin1'), 'base64'));
        } else if (key.startsWith('GNU.sparse.')) {
          throw new UnsupportedError(`tar entry ${JSON.stringify(header.name)} is a GNU sparse file, which layers cannot hold`);
        }
      }
    }
    this.pax = this.longName = this.longLink = null;
    // A regular file whose name ends in '/' is a directory in old archives.
    if (type === 'file' && flag !== '7' && header.name.endsWith('/')) header.type = type = 'directory';
    if (header.size < 0 || !Number.isSafeInteger(header.size)) throw new TarFormatError(`bad size for ${header.name}`);

    // Header-only types have no body, whatever the size field says (as in Go's archive/tar).
    const bodySize = type === 'file' ? header.size : 0;
    if (type !== 'file') header.size = 0;
    this.sink.entry(header);
    this.remaining = bodySize;
    this.bodyPadding = padding(bodySize);
    if (bodySize > 0) this.state = 'body';
    else this.endBody();
  }
}

type TarEvent = { header: TarHeader } | Buffer | typeof ENTRY_END | { error: unknown };
const ENTRY_END = Symbol('entry end');

/**
 * Reads a tar stream entry by entry. Each entry's body must be consumed (or left
 * alone) before asking for the next; unread body bytes are skipped. After the
 * end-of-archive marker the rest of the input is read and discarded, so that a
 * digest computed upstream covers the whole stream, as Docker's diffID does.
 * (A {@link TarParser} underneath; use one directly where a promise per entry
 * costs too much.)
 * @throws {@link TarFormatError} on a malformed archive,
 *   {@link UnsupportedError} on entry kinds a layer cannot hold (GNU sparse files, …).
 */
export async function* readTar(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<TarEntry, void, undefined> {
  const iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  const events: TarEvent[] = [];
  let head = 0;
  let inputDone = false;
  const parser = new TarParser({
    entry: (header) => events.push({ header }),
    // A view into the chunk: the chunk itself is not reused, so it stays valid.
    data: (chunk) => events.push(chunk),
    entryEnd: () => events.push(ENTRY_END),
  });
  /** The next event, reading input as needed; undefined at the end of the input. */
  const next = async (): Promise<TarEvent | undefined> => {
    while (head === events.length) {
      events.length = head = 0;
      if (inputDone) return undefined;
      const r = await iterator.next();
      try {
        if (r.done) {
          inputDone = true;
          parser.end();
        } else if (!parser.finished) {
          const v = r.value;
          parser.push(Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));
        }
      } catch (error) {
        // After the entries the chunk held before the bad one.
        events.push({ error });
        inputDone = true;
      }
    }
    const event = events[head]!;
    events[head++] = ENTRY_END; // drop the reference
    if (typeof event === 'object' && 'error' in event) throw event.error;
    return event;
  };
  try {
    for (;;) {
      const event = await next();
      if (event === undefined) return;
      if (typeof event !== 'object' || !('header' in event)) continue; // the rest of a body left unread
      let bodyDone = false;
      const body = {
        async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
          while (!bodyDone) {
            const e = await next();
            if (e === undefined) throw new TarFormatError('unexpected end of archive');
            if (e === ENTRY_END) bodyDone = true;
            else yield e as Buffer;
          }
        },
      };
      yield { header: event.header, body };
    }
  } finally {
    // Stop the upstream (decompressor, file stream) when the consumer gives up early.
    await iterator.return?.();
  }
}

/** What {@link encodeTarHeader} needs; unset fields default to 0 / empty. */
export interface TarHeaderInput {
  name: string;
  type: TarEntryType;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  /** Seconds; written truncated to whole seconds, as Docker's layer writer does. */
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Uint8Array>;
}

const TYPE_FLAGS: Record<TarEntryType, string> = {
  file: '0',
  link: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(value.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

function paxRecord(key: string, value: Uint8Array | string): Buffer {
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  const rest = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), v, Buffer.from('\n')]);
  let len = rest.length + 1;
  while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), rest]);
}

/** Splits a name into ustar's prefix (155) and name (100) fields, or null when it does not fit. */
function splitUstarName(name: string): [string, string] | null {
  if (!/^[\x20-\x7e]*$/.test(name)) return null;
  if (name.length <= 100) return ['', name];
  for (let i = name.indexOf('/'); i !== -1; i = name.indexOf('/', i + 1)) {
    if (i <= 155 && name.length - i - 1 <= 100 && name.length - i - 1 > 0) return [name.slice(0, i), name.slice(i + 1)];
  }
  return null;
}

function ustarBlock(h: Required<Omit<TarHeaderInput, 'xattrs'>>, flag: string, prefix: string, name: string): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(name, 0, 100, 'utf8');
  octal(block, 100, 8, h.mode & 0o7777);
  octal(block, 108, 8, h.uid);
  octal(block, 116, 8, h.gid);
  octal(block, 124, 12, h.size);
  octal(block, 136, 12, h.mtime);
  block.write(flag, 156, 1, 'latin1');
  block.write(h.linkname, 157, 100, 'utf8');
  block.write('ustar\x0000', 257, 8, 'latin1');
  octal(block, 329, 8, h.devmajor);
  octal(block, 337, 8, h.devminor);
  block.write(prefix, 345, 155, 'utf8');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i]!;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return block;
}

/**
 * The header block(s) of one entry: a PAX extended header first when the name,
 * link target, ids or size do not fit ustar, or when there are extended
 * attributes (written as raw-byte `SCHILY.xattr.*` records).
 */
export function encodeTarHeader(input: TarHeaderInput): Buffer {
  const h = {
    name: input.type === 'directory' && !input.name.endsWith('/') ? `${input.name}/` : input.name,
    type: input.type,
    mode: input.mode ?? 0,
    uid: input.uid ?? 0,
    gid: input.gid ?? 0,
    size: input.type === 'file' ? (input.size ?? 0) : 0,
    mtime: Math.max(0, Math.floor(input.mtime ?? 0)),
    linkname: input.linkname ?? '',
    devmajor: input.devmajor ?? 0,
    devminor: input.devminor ?? 0,
  };
  const records: Buffer[] = [];
  const split = splitUstarName(h.name);
  if (!split) records.push(paxRecord('path', h.name));
  if (h.linkname && (Buffer.byteLength(h.linkname) > 100 || !/^[\x20-\x7e]*$/.test(h.linkname))) {
    records.push(paxRecord('linkpath', h.linkname));
  }
  const MAX7 = 0o7777777;
  const MAX11 = 0o77777777777;
  if (h.uid > MAX7) records.push(paxRecord('uid', String(h.uid)));
  if (h.gid > MAX7) records.push(paxRecord('gid', String(h.gid)));
  if (h.size > MAX11) records.push(paxRecord('size', String(h.size)));
  if (h.mtime > MAX11) records.push(paxRecord('mtime', String(h.mtime)));
  for (const [key, value] of input.xattrs ?? []) records.push(paxRecord(`SCHILY.xattr.${key}`, value));

  const fallback = (s: string) => (/^[\x20-\x7e]*$/.test(s) ? s.slice(0, 100) : '');
  const [prefix, name] = split ?? ['', fallback(h.name)];
  const main = ustarBlock(
    {
      ...h,
      uid: Math.min(h.uid, MAX7),
      gid: Math.min(h.gid, MAX7),
      size: Math.min(h.size, MAX11),
      mtime: Math.min(h.mtime, MAX11),
      linkname: records.some((r) => r.includes(' linkpath=')) ? fallback(h.linkname) : h.linkname,
    },
    TYPE_FLAGS[h.type],
    prefix,
    name,
  );
  if (records.length === 0) return main;
  const paxData = Buffer.concat(records);
  const base = h.name.replace(/\/$/, '').split('/').pop()!;
  const paxHeader = ustarBlock(
    { ...h, name: '', type: 'file', mode: 0o644, uid: 0, gid: 0, size: paxData.length, linkname: '', devmajor: 0, devminor: 0 },
    'x',
    '',
    `PaxHeaders/${fallback(base).slice(0, 80)}`,
  );
  return Buffer.concat([paxHeader, paxData, tarPadding(paxData.length), main]);
}

/** Zero bytes that pad a body of `size` bytes to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The end-of-archive marker: two zero blocks. */
export const TAR_END = Buffer.alloc(2 * BLOCK);
