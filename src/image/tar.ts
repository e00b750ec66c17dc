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

/** Pulls exact byte counts out of a stream of arbitrarily sized chunks. */
class ChunkReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  constructor(private readonly it: AsyncIterator<Uint8Array> | Iterator<Uint8Array>) {}

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    if (b.length) {
      this.chunks.push(b);
      this.buffered += b.length;
    }
    return true;
  }

  /** Exactly `n` bytes; null at a clean end of input; throws on an end in the middle. */
  async readExact(n: number): Promise<Buffer | null> {
    while (this.buffered < n) {
      if (!(await this.pull())) {
        if (this.buffered === 0) return null;
        throw new TarFormatError('unexpected end of archive');
      }
    }
    const out = this.take(n);
    return out;
  }

  /** Between 1 and `max` bytes; throws at end of input. */
  async readSome(max: number): Promise<Buffer> {
    while (this.buffered === 0) {
      if (!(await this.pull())) throw new TarFormatError('unexpected end of archive');
    }
    return this.take(Math.min(max, this.chunks[0]!.length));
  }

  async skip(n: number): Promise<void> {
    while (n > 0) n -= (await this.readSome(n)).length;
  }

  /** Reads and discards the rest of the input, so digests cover all of it. */
  async drain(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    while (await this.pull()) {
      this.chunks = [];
      this.buffered = 0;
    }
  }

  private take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) {
      this.buffered -= n;
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}

function cstring(buf: Buffer, off: number, len: number): Buffer {
  const field = buf.subarray(off, off + len);
  const nul = field.indexOf(0);
  return nul === -1 ? field : field.subarray(0, nul);
}

function text(buf: Buffer, off: number, len: number): string {
  return utf8.decode(cstring(buf, off, len));
}

/** A numeric header field: octal text, or base-256 when the high bit of the first byte is set (GNU). */
function numeric(buf: Buffer, off: number, len: number, field: string): number {
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
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 32 : block[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  const stored = numeric(block, 148, 8, 'checksum');
  return stored === unsigned || stored === signed;
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

/**
 * Reads a tar stream entry by entry. Each entry's body must be consumed (or left
 * alone) before asking for the next; unread body bytes are skipped. After the
 * end-of-archive marker the rest of the input is read and discarded, so that a
 * digest computed upstream covers the whole stream, as Docker's diffID does.
 * @throws {@link TarFormatError} on a malformed archive,
 *   {@link UnsupportedError} on entry kinds a layer cannot hold (GNU sparse files, …).
 */
export async function* readTar(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<TarEntry, void, undefined> {
  const iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array> =
    Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
  const reader = new ChunkReader(iterator);
  let pax: Map<string, Buffer> | null = null;
  let longName: string | null = null;
  let longLink: string | null = null;
  try {
    for (;;) {
      const block = await reader.readExact(BLOCK);
      if (block === null) return; // no end-of-archive marker: accepted, as Go does
      if (block.every((b) => b === 0)) {
        await reader.drain();
        return;
      }
      if (!checksumOk(block)) throw new TarFormatError('header checksum mismatch (is it a tar archive?)');

      const flag = String.fromCharCode(block[156]!);
      const rawSize = numeric(block, 124, 12, 'size');
      const padded = (n: number) => n + ((BLOCK - (n % BLOCK)) % BLOCK);

      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        if (rawSize > MAX_META) throw new TarFormatError(`${flag} header of ${rawSize} bytes is too large`);
        const body = await reader.readExact(padded(rawSize));
        if (body === null) throw new TarFormatError('unexpected end of archive');
        const data = body.subarray(0, rawSize);
        if (flag === 'x') pax = parsePax(data);
        else if (flag === 'L') longName = utf8.decode(cstring(data, 0, data.length));
        else if (flag === 'K') longLink = utf8.decode(cstring(data, 0, data.length));
        // 'g' (global PAX) is skipped, as Docker and containerd do.
        continue;
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
      if (longName !== null) header.name = longName;
      if (longLink !== null) header.linkname = longLink;
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
      pax = longName = longLink = null;
      // A regular file whose name ends in '/' is a directory in old archives.
      if (type === 'file' && flag !== '7' && header.name.endsWith('/')) header.type = type = 'directory';
      if (header.size < 0 || !Number.isSafeInteger(header.size)) throw new TarFormatError(`bad size for ${header.name}`);

      // Header-only types have no body, whatever the size field says (as in Go's archive/tar).
      const bodySize = type === 'file' ? header.size : 0;
      if (type !== 'file') header.size = 0;
      let remaining = bodySize;
      const body = {
        async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
          while (remaining > 0) {
            const chunk = await reader.readSome(remaining);
            remaining -= chunk.length;
            yield chunk;
          }
        },
      };
      yield { header, body };
      await reader.skip(remaining + (padded(bodySize) - bodySize));
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
