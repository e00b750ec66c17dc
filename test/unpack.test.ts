import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack, type Header } from 'tar-stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AbortedError, DigestMismatchError, UnsafeLayerError } from '../src/errors.js';
import { ImageStore } from '../src/image/store.js';
import { encodeTarHeader, readTar, TAR_END, tarPadding, TarFormatError } from '../src/image/tar.js';
import { unpackLayer } from '../src/image/unpack.js';

const hasAttrTools = spawnSync('getfattr', ['--version']).status === 0;

type Entry = Partial<Header> & { name: string; content?: string | Buffer };

/** Builds a tar archive in memory with tar-stream (as a hostile layer author could). */
async function makeTar(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of p) chunks.push(c as Buffer);
  })();
  for (const { content, ...h } of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (content !== undefined) p.entry(h, content, cb);
      else p.entry(h, cb);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const getxattr = (path: string, name: string): Buffer | undefined => {
  const r = spawnSync('getfattr', ['-h', '-n', name, '-e', 'hex', '--absolute-names', path], { encoding: 'utf8' });
  if (r.status !== 0) return undefined;
  const line = r.stdout.split('\n').find((l) => l.startsWith(`${name}=`));
  return line ? Buffer.from(line.slice(name.length + 3), 'hex') : undefined;
};

let sandbox: string;
beforeEach(() => {
  sandbox = mkdtempSync(join(tmpdir(), 'dockless-unpack-'));
});
afterEach(() => {
  rmSync(sandbox, { recursive: true, force: true });
});

describe('unpackLayer', () => {
  it('extracts files, dirs, links, devices and metadata, and computes both digests', async () => {
    const mtime = new Date('2020-01-02T03:04:05Z');
    const tar = await makeTar([
      { name: 'etc/', type: 'directory', mode: 0o750, uid: 3, gid: 4, mtime },
      { name: 'etc/hello', content: 'hello\n', mode: 0o640, uid: 1000, gid: 1001, mtime },
      { name: 'etc/hardlink', type: 'link', linkname: 'etc/hello' },
      { name: 'etc/link', type: 'symlink', linkname: '/nonexistent/../../etc/shadow', mtime },
      { name: 'bin/suid', content: '#!/bin/sh\n', mode: 0o4755, mtime },
      { name: 'tmp/', type: 'directory', mode: 0o1777, mtime },
      { name: 'run/fifo', type: 'fifo', mode: 0o600 },
      { name: 'dev/null', type: 'character-device', mode: 0o666, devmajor: 1, devminor: 3 },
      { name: 'dev/loop9', type: 'block-device', mode: 0o660, devmajor: 7, devminor: 9 },
    ]);
    const dest = join(sandbox, 'layer');
    mkdirSync(dest);
    const result = await unpackLayer([gzipSync(tar)], dest);

    expect(result.compression).toBe('gzip');
    expect(result.diffId).toBe(sha256(tar));
    expect(result.digest).toBe(sha256(gzipSync(tar)));
    expect(result.tarSize).toBe(tar.length);
    expect(result.size).toBe(6 + 10);

    expect(readFileSync(join(dest, 'etc/hello'), 'utf8')).toBe('hello\n');
    const hello = statSync(join(dest, 'etc/hello'));
    expect([hello.mode & 0o7777, hello.uid, hello.gid, hello.nlink]).toEqual([0o640, 1000, 1001, 2]);
    expect(statSync(join(dest, 'etc/hardlink')).ino).toBe(hello.ino);
    expect(hello.mtimeMs).toBe(mtime.getTime());
    expect(readlinkSync(join(dest, 'etc/link'))).toBe('/nonexistent/../../etc/shadow');
    expect(statSync(join(dest, 'bin/suid')).mode & 0o7777).toBe(0o4755);
    expect(statSync(join(dest, 'tmp')).mode & 0o7777).toBe(0o1777);
    const etc = statSync(join(dest, 'etc'));
    // Directory times are set after their children were made.
    expect([etc.mode & 0o7777, etc.uid, etc.gid, etc.mtimeMs]).toEqual([0o750, 3, 4, mtime.getTime()]);
    expect(lstatSync(join(dest, 'run/fifo')).isFIFO()).toBe(true);
    const dev = lstatSync(join(dest, 'dev/null'));
    expect(dev.isCharacterDevice()).toBe(true);
    expect(dev.rdev).toBe((1 << 8) | 3);
    expect(lstatSync(join(dest, 'dev/loop9')).isBlockDevice()).toBe(true);
    // Implicit parents are 0755.
    expect(statSync(join(dest, 'bin')).mode & 0o7777).toBe(0o755);
  });

  it('turns OCI whiteouts into overlay whiteouts', async () => {
    const tar = await makeTar([
      { name: 'gone/', type: 'directory', mode: 0o755 },
      { name: 'etc/.wh.removed', content: '', uid: 0, gid: 0 },
      { name: 'opaque/', type: 'directory', mode: 0o755 },
      { name: 'opaque/.wh..wh..opq', content: '' },
      { name: 'opaque/kept', content: 'x' },
      { name: '.wh..wh.plnk/123', content: 'aufs hardlink stash' },
    ]);
    const dest = join(sandbox, 'layer');
    mkdirSync(dest);
    if (!hasAttrTools) {
      // Without getfattr/setfattr (and no native addon) the opaque marker cannot be written.
      await expect(unpackLayer([tar], dest)).rejects.toThrow(/lsetxattr/);
      return;
    }
    await unpackLayer([tar], dest);
    const wh = lstatSync(join(dest, 'etc/removed'));
    expect(wh.isCharacterDevice()).toBe(true);
    expect(wh.rdev).toBe(0);
    expect(existsSync(join(dest, 'etc/.wh.removed'))).toBe(false);
    expect(getxattr(join(dest, 'opaque'), 'trusted.overlay.opaque')?.toString()).toBe('y');
    expect(existsSync(join(dest, 'opaque/.wh..wh..opq'))).toBe(false);
    expect(readFileSync(join(dest, 'opaque/kept'), 'utf8')).toBe('x');
    expect(existsSync(join(dest, '.wh..wh.plnk'))).toBe(false);
  });

  it.skipIf(!hasAttrTools)('keeps binary xattr values byte for byte and ignores forged overlay xattrs', async () => {
    const value = Buffer.from([0x80, 0xff, 0x00, 0x41, 0xc3]);
    const xattrs = new Map<string, Uint8Array>([
      ['user.bin', value],
      ['trusted.overlay.redirect', Buffer.from('/etc')],
    ]);
    const body = Buffer.from('data');
    const tar = Buffer.concat([
      encodeTarHeader({ name: 'f', type: 'file', mode: 0o644, size: body.length, xattrs }),
      body,
      tarPadding(body.length),
      TAR_END,
    ]);
    const dest = join(sandbox, 'layer');
    mkdirSync(dest);
    await unpackLayer([tar], dest);
    expect(getxattr(join(dest, 'f'), 'user.bin')).toEqual(value);
    expect(getxattr(join(dest, 'f'), 'trusted.overlay.redirect')).toBeUndefined();
  });

  it('reads what GNU tar writes: long names, long link targets, PAX headers', async () => {
    const src = join(sandbox, 'src');
    const long = join(src, 'd'.repeat(90), 'e'.repeat(90));
    mkdirSync(long, { recursive: true });
    writeFileSync(join(long, `${'f'.repeat(120)}.txt`), 'deep');
    execFileSync('ln', ['-s', 't'.repeat(150), join(src, 'longlink')]);
    for (const format of ['gnu', 'pax', 'ustar']) {
      const file = join(sandbox, `${format}.tar`);
      const r = spawnSync('tar', ['--format', format, '-C', src, '-cf', file, '.']);
      if (format === 'ustar') {
        // ustar cannot hold the 150-character link target: GNU tar refuses, which is fine.
        expect(r.status).not.toBe(0);
        continue;
      }
      expect(r.status).toBe(0);
      const dest = join(sandbox, `out-${format}`);
      mkdirSync(dest);
      const result = await unpackLayer([readFileSync(file)], dest);
      expect(result.diffId).toBe(sha256(readFileSync(file)));
      expect(readFileSync(join(dest, 'd'.repeat(90), 'e'.repeat(90), `${'f'.repeat(120)}.txt`), 'utf8')).toBe('deep');
      expect(readlinkSync(join(dest, 'longlink'))).toBe('t'.repeat(150));
    }
  });

  it('round-trips its own writer through GNU tar', async () => {
    const body = Buffer.from('payload');
    const tar = Buffer.concat([
      encodeTarHeader({ name: 'dir', type: 'directory', mode: 0o755 }),
      encodeTarHeader({ name: `dir/${'n'.repeat(200)}`, type: 'file', mode: 0o600, size: body.length, uid: 123456789 }),
      body,
      tarPadding(body.length),
      TAR_END,
    ]);
    const out = execFileSync('tar', ['--numeric-owner', '-tvf', '-'], { input: tar, encoding: 'utf8' });
    expect(out).toContain(`dir/${'n'.repeat(200)}`);
    expect(out).toContain('123456789');
    const names: string[] = [];
    for await (const e of readTar([tar])) names.push(e.header.name);
    expect(names).toEqual(['dir/', `dir/${'n'.repeat(200)}`]);
  });

  it('rejects input that is not a tar archive', async () => {
    const dest = join(sandbox, 'layer');
    mkdirSync(dest);
    await expect(unpackLayer([Buffer.alloc(1024, 0x41)], dest)).rejects.toBeInstanceOf(TarFormatError);
  });

  it('stops on abort', async () => {
    const tar = await makeTar([{ name: 'a', content: 'x' }]);
    const dest = join(sandbox, 'layer');
    mkdirSync(dest);
    const ac = new AbortController();
    ac.abort();
    await expect(unpackLayer([tar], dest, { signal: ac.signal })).rejects.toBeInstanceOf(AbortedError);
  });
});

describe('malicious layers', () => {
  let root: string;
  let store: ImageStore;
  let outside: string;
  beforeEach(() => {
    root = join(sandbox, 'root');
    outside = join(sandbox, 'outside');
    mkdirSync(outside);
    store = ImageStore.open(root);
  });

  /** Asserts the layer is refused, naming `entry`, and that nothing is left in the store or outside. */
  async function expectRefused(entries: Entry[], entry: string, reason?: RegExp): Promise<void> {
    const tar = await makeTar(entries);
    const err = await store.addLayer([tar]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsafeLayerError);
    expect((err as UnsafeLayerError).entry).toBe(entry);
    if (reason) expect((err as Error).message).toMatch(reason);
    expect(readdirSync(join(root, 'layers'))).toEqual([]);
    expect(readdirSync(outside)).toEqual([]);
    expect(readdirSync(sandbox).filter((n) => n !== 'planted').sort()).toEqual(['outside', 'root']);
  }

  it('refuses .. components', async () => {
    await expectRefused([{ name: 'ok', content: 'x' }, { name: '../../../outside/evil', content: 'x' }], '../../../outside/evil', /'\.\.'/);
    await expectRefused([{ name: 'a/../../evil', content: 'x' }], 'a/../../evil');
  });

  it('keeps absolute names inside the layer, and refuses absolute names that climb out', async () => {
    const escape = `/tmp/dockless-escape-${randomBytes(4).toString('hex')}`;
    const layer = await store.addLayer([await makeTar([{ name: escape, content: 'x' }])]).finally(() => {
      if (existsSync(escape)) {
        rmSync(escape, { force: true });
        expect.fail(`${escape} was written outside the layer`);
      }
    });
    expect(readFileSync(join(store.layerDirs({ chainIds: [layer.chainId] } as never)[0]!, escape), 'utf8')).toBe('x');
    rmSync(join(root, 'layers', layer.chainId.slice(7)), { recursive: true });
    await expectRefused([{ name: `/../../..${outside}/evil`, content: 'x' }], `/../../..${outside}/evil`);
  });

  it('refuses to write through a symlink made earlier in the layer', async () => {
    // Through "/" to a harmless path (a broken check must not clobber /etc/passwd on the test machine).
    const escape = `dockless-escape-${randomBytes(4).toString('hex')}`;
    try {
      await expectRefused(
        [
          { name: 'a', type: 'symlink', linkname: '/' },
          { name: `a/tmp/${escape}`, content: 'pwned' },
        ],
        `a/tmp/${escape}`,
        /symlink/,
      );
      expect(existsSync(`/tmp/${escape}`)).toBe(false);
    } finally {
      rmSync(`/tmp/${escape}`, { force: true });
    }
    await expectRefused(
      [
        { name: 'b', type: 'symlink', linkname: outside },
        { name: 'b/evil', type: 'directory' },
      ],
      'b/evil',
    );
    // A directory replaced by a symlink is not trusted any more.
    await expectRefused(
      [
        { name: 'c/', type: 'directory' },
        { name: 'c', type: 'symlink', linkname: outside },
        { name: 'c/evil', content: 'x' },
      ],
      'c/evil',
    );
    // Whiteouts go through the same check.
    await expectRefused(
      [
        { name: 'd', type: 'symlink', linkname: outside },
        { name: 'd/.wh.evil', content: '' },
      ],
      'd/.wh.evil',
    );
  });

  it('refuses hard links that leave the layer or go through a symlink', async () => {
    writeFileSync(join(sandbox, 'planted'), 'secret');
    await expectRefused([{ name: 'l', type: 'link', linkname: '../../planted' }], 'l', /'\.\.'/);
    await expectRefused([{ name: 'l', type: 'link', linkname: `/../../../${sandbox}/planted` }], 'l', /'\.\.'/);
    await expectRefused(
      [
        { name: 's', type: 'symlink', linkname: '/' },
        { name: 'l', type: 'link', linkname: 's/etc/passwd' },
      ],
      'l',
      /symlink/,
    );
    await expectRefused([{ name: 'l', type: 'link', linkname: 'missing' }], 'l', /not in the layer/);
    await expectRefused([{ name: 'd/', type: 'directory' }, { name: 'l', type: 'link', linkname: 'd' }], 'l', /directory/);
  });

  it('refuses a whiteout of ..', async () => {
    await expectRefused([{ name: 'a/.wh...', content: '' }], 'a/.wh...');
  });

  it('a hard link to a symlink links the symlink itself', async () => {
    const layer = await store.addLayer([
      await makeTar([
        { name: 's', type: 'symlink', linkname: '/etc/passwd' },
        { name: 'l', type: 'link', linkname: 's' },
      ]),
    ]);
    const dir = join(root, 'layers', layer.chainId.slice(7), 'diff');
    expect(lstatSync(join(dir, 'l')).isSymbolicLink()).toBe(true);
    expect(readlinkSync(join(dir, 'l'))).toBe('/etc/passwd');
  });
});

describe('addLayer', () => {
  it('verifies the expected diffID and stores nothing on mismatch', async () => {
    const root = join(sandbox, 'root');
    const store = ImageStore.open(root);
    const tar = await makeTar([{ name: 'a', content: 'x' }]);
    const wrong = `sha256:${'0'.repeat(64)}`;
    const err = await store.addLayer([tar], { diffId: wrong }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DigestMismatchError);
    expect((err as DigestMismatchError).actual).toBe(sha256(tar));
    expect(readdirSync(join(root, 'layers'))).toEqual([]);

    const layer = await store.addLayer([tar], { diffId: sha256(tar) });
    expect(layer.chainId).toBe(sha256(tar));
    expect(store.hasLayer(layer.chainId)).toBe(true);
    // Present already: the stream is not read.
    let read = false;
    const again = await store.addLayer(
      (async function* () {
        read = true;
        yield tar;
      })(),
      { diffId: sha256(tar) },
    );
    expect(read).toBe(false);
    expect(again).toEqual(layer);

    // A child layer's ChainID chains the parent's.
    const tar2 = await makeTar([{ name: 'b', content: 'y' }]);
    const child = await store.addLayer([tar2], { parentChainId: layer.chainId });
    expect(child.parent).toBe(layer.chainId);
    expect(child.chainId).toBe(sha256(Buffer.from(`${layer.chainId} ${sha256(tar2)}`)));
  });

  it('unpacks zstd layers and cleans up after corrupt ones', async () => {
    const root = join(sandbox, 'root');
    const store = ImageStore.open(root);
    const tar = await makeTar([{ name: 'z', content: 'zstd!' }]);
    const zst = execFileSync('zstd', ['-c', '-q'], { input: tar });
    const layer = await store.addLayer([zst]);
    expect(layer.compression).toBe('zstd');
    expect(layer.diffId).toBe(sha256(tar));
    expect(layer.blobDigest).toBe(sha256(zst));
    expect(readFileSync(join(root, 'layers', layer.chainId.slice(7), 'diff', 'z'), 'utf8')).toBe('zstd!');

    const corrupt = Buffer.concat([zst.subarray(0, 20), Buffer.alloc(50, 7)]);
    await expect(store.addLayer([corrupt])).rejects.toThrow(/zstd|tar/);
    const gzCorrupt = Buffer.concat([gzipSync(tar).subarray(0, 30), Buffer.alloc(30, 1)]);
    await expect(store.addLayer([gzCorrupt])).rejects.toThrow();
    expect(readdirSync(join(root, 'layers'))).toEqual([layer.chainId.slice(7)]);
  });
});

describe('with the native fs ops', () => {
  async function loadNative() {
    return (await import('../src/image/native-fsops.js')).nativeFsOps as Required<typeof import('../src/image/native-fsops.js').nativeFsOps>;
  }

  it('makes whiteouts, devices and fifos, and sets and reads xattrs, without following symlinks', async () => {
    const ops = await loadNative();
    const { SystemError } = await import('../src/errors.js');
    const dir = join(sandbox, 'd');
    mkdirSync(dir);
    ops.mknod(join(dir, 'wh'), 0o020000, 0, 0);
    ops.mknod(join(dir, 'null'), 0o020000 | 0o666, 1, 3); // the umask does not apply
    ops.mknod(join(dir, 'fifo'), 0o010000 | 0o640, 0, 0);
    expect([lstatSync(join(dir, 'wh')).isCharacterDevice(), lstatSync(join(dir, 'wh')).rdev]).toEqual([true, 0]);
    expect([lstatSync(join(dir, 'null')).mode & 0o7777, lstatSync(join(dir, 'null')).rdev]).toEqual([0o666, (1 << 8) | 3]);
    expect(lstatSync(join(dir, 'fifo')).isFIFO()).toBe(true);

    execFileSync('ln', ['-s', join(sandbox, 'elsewhere'), join(dir, 'link')]);
    const exists = (() => {
      try {
        ops.mknod(join(dir, 'link'), 0o020000, 0, 0);
      } catch (e) {
        return e;
      }
    })();
    expect(exists).toBeInstanceOf(SystemError);
    expect((exists as InstanceType<typeof SystemError>).errnoName).toBe('EEXIST');
    expect(existsSync(join(sandbox, 'elsewhere'))).toBe(false);

    const value = Buffer.from([0x80, 0xff, 0x00, 0x41]);
    writeFileSync(join(dir, 'f'), 'x');
    ops.lsetxattr(join(dir, 'f'), 'user.bin', value);
    ops.lsetxattr(join(dir, 'f'), 'user.empty', new Uint8Array(0));
    expect(ops.llistxattr(join(dir, 'f')).sort()).toEqual(['user.bin', 'user.empty']);
    expect(ops.lgetxattr(join(dir, 'f'), 'user.bin')).toEqual(value);
    expect(ops.lgetxattr(join(dir, 'f'), 'user.empty').length).toBe(0);
    expect(() => ops.lgetxattr(join(dir, 'f'), 'user.none')).toThrow(expect.objectContaining({ errnoName: 'ENODATA', syscall: 'lgetxattr' }));
    // user.* attributes cannot be put on a symlink itself: it is not followed to its target.
    expect(() => ops.lsetxattr(join(dir, 'link'), 'user.x', value)).toThrow(expect.objectContaining({ errnoName: 'EPERM' }));
    expect(ops.llistxattr(join(dir, 'link'))).toEqual([]);

    expect(() => ops.mknod(join(dir, 'reg'), 0o100644, 0, 0)).toThrow(expect.objectContaining({ errnoName: 'EINVAL' }));
    expect(() => ops.mknod(join(dir, 'big'), 0o020000, 4096, 0)).toThrow(RangeError);
    expect(() => ops.mknod(`${dir}/a\0b`, 0o020000, 0, 0)).toThrow(TypeError);
    expect(() => ops.lsetxattr(join(dir, 'f'), 'user.s', 'text' as never)).toThrow(TypeError);
    expect(() => ops.llistxattr(`/${'x'.repeat(5000)}`)).toThrow(expect.objectContaining({ errnoName: 'ENAMETOOLONG' }));
  });

  it('unpacks a layer whose later entries replace earlier ones', async () => {
    const ops = await loadNative();
    const xattrs = new Map<string, Uint8Array>([['user.cap', Buffer.from([0x80, 1])]]);
    const file = (name: string, body: string, extra: Partial<Parameters<typeof encodeTarHeader>[0]> = {}) => {
      const b = Buffer.from(body);
      return Buffer.concat([encodeTarHeader({ name, type: 'file', mode: 0o644, size: b.length, ...extra }), b, tarPadding(b.length)]);
    };
    const tar = Buffer.concat([
      file('a', 'first'),
      encodeTarHeader({ name: 'a', type: 'directory', mode: 0o700 }), // a file replaced by a directory
      file('a/inner', 'in'),
      encodeTarHeader({ name: 'b', type: 'directory', mode: 0o755 }),
      file('b/old', 'old'),
      file('b', 'now a file', { mode: 0o600 }), // a directory (and its contents) replaced by a file
      encodeTarHeader({ name: 'c', type: 'symlink', linkname: '/etc/passwd' }),
      file('c', 'not through the symlink'), // a symlink replaced by a file
      encodeTarHeader({ name: 'd', type: 'directory', mode: 0o711 }),
      encodeTarHeader({ name: 'd', type: 'directory', mode: 0o750 }), // a directory listed twice keeps its contents
      file('d/kept', 'k'),
      file('e', 'removed by its whiteout'),
      file('.wh.e', ''),
      file('f', 'a fifo now'),
      encodeTarHeader({ name: 'f', type: 'fifo', mode: 0o600 }),
      file('g', 'with xattrs', { xattrs }),
      TAR_END,
    ]);
    const dest = join(sandbox, 'layer');
    mkdirSync(dest);
    await unpackLayer([gzipSync(tar)], dest, { fsops: ops });
    expect(statSync(join(dest, 'a')).isDirectory()).toBe(true);
    expect(readFileSync(join(dest, 'a/inner'), 'utf8')).toBe('in');
    expect(readFileSync(join(dest, 'b'), 'utf8')).toBe('now a file');
    expect(statSync(join(dest, 'b')).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(dest, 'c')).isFile()).toBe(true);
    expect(readFileSync(join(dest, 'c'), 'utf8')).toBe('not through the symlink');
    expect(statSync(join(dest, 'd')).mode & 0o777).toBe(0o750);
    expect(readFileSync(join(dest, 'd/kept'), 'utf8')).toBe('k');
    expect(lstatSync(join(dest, 'e')).isCharacterDevice()).toBe(true);
    expect(lstatSync(join(dest, 'f')).isFIFO()).toBe(true);
    expect(ops.lgetxattr(join(dest, 'g'), 'user.cap')).toEqual(Buffer.from([0x80, 1]));
  });

  it('reads the same archive however its bytes are split', async () => {
    const src = join(sandbox, 'src');
    mkdirSync(join(src, 'd'.repeat(120)), { recursive: true });
    writeFileSync(join(src, 'd'.repeat(120), 'big'), randomBytes(300_000));
    writeFileSync(join(src, 'small'), 'tiny');
    execFileSync('ln', ['-s', 't'.repeat(150), join(src, 'longlink')]);
    const tar = execFileSync('tar', ['--format', 'pax', '-C', src, '-cf', '-', '.'], { maxBuffer: 1 << 24 });
    const listing = async (chunks: Buffer[]) => {
      const out: string[] = [];
      for await (const { header, body } of readTar(chunks)) {
        let n = 0;
        const h = createHash('sha256');
        for await (const c of body) {
          n += c.length;
          h.update(c);
        }
        out.push(`${header.name} ${header.type} ${header.linkname} ${n} ${h.digest('hex').slice(0, 8)}`);
      }
      return out;
    };
    const whole = await listing([tar]);
    expect(whole.length).toBeGreaterThan(4);
    for (const size of [7, 511, 512, 513, 4096 + 3]) {
      const pieces: Buffer[] = [];
      for (let off = 0; off < tar.length; off += size) pieces.push(tar.subarray(off, off + size));
      expect(await listing(pieces)).toEqual(whole);
      const dest = join(sandbox, `out-${size}`);
      mkdirSync(dest);
      const result = await unpackLayer(pieces, dest);
      expect(result.diffId).toBe(sha256(tar));
      expect(readFileSync(join(dest, 'd'.repeat(120), 'big')).equals(readFileSync(join(src, 'd'.repeat(120), 'big')))).toBe(true);
    }
    // Cut short inside an entry: an error, not a short layer.
    const dest = join(sandbox, 'cut');
    mkdirSync(dest);
    await expect(unpackLayer([tar.subarray(0, 2048 + 100)], dest)).rejects.toThrow(/unexpected end/);
  });
});
