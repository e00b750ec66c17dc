import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  createReadStream,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DigestMismatchError,
  ImageConflictError,
  ImageInUseError,
  ImageNotFoundError,
  InvalidImageError,
  InvalidOptionError,
  InvalidReferenceError,
} from '../src/errors.js';
import { ImageStore, type ImageRecord } from '../src/image/store.js';

const hasAttrTools = spawnSync('setfattr', ['--version']).status === 0;
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let sandbox: string;
let root: string;
let store: ImageStore;

beforeEach(() => {
  sandbox = mkdtempSync(join(tmpdir(), 'dockless-images-'));
  root = join(sandbox, 'root');
  store = ImageStore.open(root);
});
afterEach(() => {
  rmSync(sandbox, { recursive: true, force: true });
});

/** A small root file system with one of each kind of file. */
function makeRootfs(dir: string, marker = 'hello'): string {
  mkdirSync(join(dir, 'bin'), { recursive: true });
  mkdirSync(join(dir, 'etc'));
  mkdirSync(join(dir, 'tmp'));
  chmodSync(join(dir, 'tmp'), 0o1777);
  writeFileSync(join(dir, 'etc', 'hello'), `${marker}\n`);
  writeFileSync(join(dir, 'bin', 'tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  linkSync(join(dir, 'bin', 'tool'), join(dir, 'bin', 'tool-link'));
  symlinkSync('tool', join(dir, 'bin', 'alias'));
  symlinkSync('/etc/shadow', join(dir, 'etc', 'dangling'));
  writeFileSync(join(dir, 'bin', 'suid'), 'x', { mode: 0o755 });
  chmodSync(join(dir, 'bin', 'suid'), 0o4755);
  execFileSync('mkfifo', [join(dir, 'tmp', 'fifo')]);
  execFileSync('chown', ['1234:5678', join(dir, 'etc', 'hello')]);
  for (const p of ['etc/hello', 'etc', 'bin', 'tmp']) utimesSync(join(dir, p), 1_600_000_000, 1_600_000_000);
  return dir;
}

describe('import', () => {
  it('imports a directory with links, a fifo, a setuid file and ownership', async () => {
    const src = makeRootfs(join(sandbox, 'src'));
    if (hasAttrTools) execFileSync('setfattr', ['-n', 'user.test', '-v', 'value', join(src, 'etc', 'hello')]);
    const image = await store.import(src, { ref: 'myimage:1', changes: ['CMD ["/bin/tool"]'] });

    expect(image.repoTags).toEqual(['myimage:1']);
    expect(image.diffIds).toHaveLength(1);
    expect(image.id).toBe(sha256(readFileSync(store.blobPath(image.id))));
    const [dir] = store.layerDirs(image);
    expect(dir).toBe(join(root, 'layers', image.chainIds[0]!.slice(7), 'diff'));
    expect(readFileSync(join(dir!, 'etc', 'hello'), 'utf8')).toBe('hello\n');
    const hello = statSync(join(dir!, 'etc', 'hello'));
    expect([hello.uid, hello.gid, hello.mtimeMs]).toEqual([1234, 5678, 1_600_000_000_000]);
    expect(statSync(join(dir!, 'etc')).mtimeMs).toBe(1_600_000_000_000);
    expect(statSync(join(dir!, 'bin', 'tool-link')).ino).toBe(statSync(join(dir!, 'bin', 'tool')).ino);
    expect(readlinkSync(join(dir!, 'bin', 'alias'))).toBe('tool');
    expect(readlinkSync(join(dir!, 'etc', 'dangling'))).toBe('/etc/shadow');
    expect(statSync(join(dir!, 'bin', 'suid')).mode & 0o7777).toBe(0o4755);
    expect(statSync(join(dir!, 'tmp')).mode & 0o7777).toBe(0o1777);
    expect(lstatSync(join(dir!, 'tmp', 'fifo')).isFIFO()).toBe(true);
    if (hasAttrTools) {
      const out = execFileSync('getfattr', ['--absolute-names', '-n', 'user.test', '--only-values', join(dir!, 'etc', 'hello')], { encoding: 'utf8' });
      expect(out).toBe('value');
    }

    const inspect = store.inspect('myimage:1');
    expect(inspect.config.Cmd).toEqual(['/bin/tool']);
    expect(inspect.os).toBe('linux');
    expect(inspect.architecture).toBe(process.arch === 'x64' ? 'amd64' : process.arch);
    expect(inspect.rootfs).toEqual({ type: 'layers', diff_ids: image.diffIds });
    expect(inspect.history).toEqual([{ created: inspect.created, comment: `Imported from ${src}` }]);
    expect(inspect.size).toBe(image.size);
    expect(image.size).toBe(statSync(join(src, 'etc', 'hello')).size + statSync(join(src, 'bin', 'tool')).size + 1);
  });

  it('imports tar, tar.gz and tar.zst files into one shared layer', async () => {
    const src = makeRootfs(join(sandbox, 'src'));
    const tar = join(sandbox, 'rootfs.tar');
    execFileSync('tar', ['--numeric-owner', '-C', src, '-cf', tar, '.']);
    execFileSync('gzip', ['-k', tar]);
    execFileSync('zstd', ['-q', '-k', tar]);

    const plain = await store.import(tar, { ref: 'plain' });
    const gz = await store.import(`${tar}.gz`, { ref: 'gz' });
    const zst = await store.import(createReadStream(`${tar}.zst`), { ref: 'zst' });
    expect(plain.diffIds).toEqual([sha256(readFileSync(tar))]);
    expect(gz.diffIds).toEqual(plain.diffIds);
    expect(zst.diffIds).toEqual(plain.diffIds);
    expect(store.listLayers()).toEqual(plain.chainIds);
    const dir = store.layerDirs(zst)[0]!;
    expect(readFileSync(join(dir, 'etc', 'hello'), 'utf8')).toBe('hello\n');
    expect(statSync(join(dir, 'bin', 'suid')).mode & 0o7777).toBe(0o4755);
    expect(store.inspect('zst').history[0]!.comment).toBe('Imported from -');
  });

  it('applies config and changes as docker import --change does', async () => {
    const src = makeRootfs(join(sandbox, 'src'));
    const image = await store.import(src, {
      config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['old'] },
      changes: [
        'ENV A=1 B="two words" C=$A-${A}',
        'ENV D=${A}x',
        'ENV LEGACY value with spaces',
        'ENV PATH=$PATH:/opt/bin',
        'ENTRYPOINT /bin/tool --flag',
        'WORKDIR /srv',
        'WORKDIR app',
        'USER 1000:1000',
        'EXPOSE 80 53/udp 8000-8001',
        'LABEL org.example.name="my image" version=1',
        'VOLUME ["/data", "/logs"]',
        'STOPSIGNAL SIGINT',
      ],
      platform: 'linux/arm64/v8',
    });
    const config = store.config(image);
    expect(config).toEqual({
      // As in a Dockerfile, one ENV line sees the values from before it.
      Env: ['PATH=/usr/bin:/bin:/opt/bin', 'A=1', 'B=two words', 'C=-', 'D=1x', 'LEGACY=value with spaces'],
      Cmd: null,
      Entrypoint: ['/bin/sh', '-c', '/bin/tool --flag'],
      WorkingDir: '/srv/app',
      User: '1000:1000',
      ExposedPorts: { '80/tcp': {}, '53/udp': {}, '8000/tcp': {}, '8001/tcp': {} },
      Labels: { 'org.example.name': 'my image', version: '1' },
      Volumes: { '/data': {}, '/logs': {} },
      StopSignal: 'SIGINT',
    });
    expect([image.os, image.architecture, image.variant]).toEqual(['linux', 'arm64', 'v8']);
    // CMD set in the same changes survives a later ENTRYPOINT.
    const again = await store.import(src, { changes: ['CMD ["a"]', 'ENTRYPOINT ["b"]'] });
    expect(store.config(again)).toMatchObject({ Cmd: ['a'], Entrypoint: ['b'] });
  });

  it('refuses bad options before storing anything', async () => {
    const src = makeRootfs(join(sandbox, 'src'));
    await expect(store.import(src, { changes: ['RUN rm -rf /'] })).rejects.toThrow(InvalidOptionError);
    await expect(store.import(src, { changes: ['EXPOSE 99999'] })).rejects.toThrow(/changes\[0\]/);
    await expect(store.import(src, { ref: 'Bad:Ref' })).rejects.toThrow(InvalidReferenceError);
    await expect(store.import(src, { platform: 'linux' })).rejects.toThrow(/platform/);
    await expect(store.import(src, { bogus: 1 } as never)).rejects.toThrow(/bogus/);
    await expect(store.import(join(sandbox, 'missing'))).rejects.toThrow(InvalidOptionError);
    expect(readdirSync(join(root, 'layers'))).toEqual([]);
    expect(readdirSync(join(root, 'blobs', 'sha256'))).toEqual([]);
    expect(store.list()).toEqual([]);
  });
});

describe('references', () => {
  let a: ImageRecord;
  let b: ImageRecord;
  beforeEach(async () => {
    const src = makeRootfs(join(sandbox, 'src'));
    a = await store.import(src, { ref: 'busybox' });
    b = await store.import(src, { ref: 'ghcr.io/org/app:1.0' });
  });

  it('resolves names, ids and unique id prefixes', () => {
    expect(store.resolve('busybox').id).toBe(a.id);
    expect(store.resolve('busybox:latest').id).toBe(a.id);
    expect(store.resolve('docker.io/library/busybox:latest').id).toBe(a.id);
    expect(store.resolve(a.id).id).toBe(a.id);
    expect(store.resolve(a.id.slice(7)).id).toBe(a.id);
    expect(store.resolve(a.id.slice(0, 7 + 12)).id).toBe(a.id);
    expect(store.resolve(b.id.slice(7, 7 + 12)).id).toBe(b.id);
    expect(store.resolve('ghcr.io/org/app:1.0').repoTags).toEqual(['ghcr.io/org/app:1.0']);
    expect(() => store.resolve('busybox:other')).toThrow(ImageNotFoundError);
    expect(() => store.resolve('nothing')).toThrow(ImageNotFoundError);
    expect(store.find('nothing')).toBeUndefined();
    expect(store.list().map((i) => i.id).sort()).toEqual([a.id, b.id].sort());
  });

  it('tags and untags', async () => {
    await store.tag('busybox', 'mine:v2');
    expect(store.resolve('mine:v2').repoTags).toEqual(['busybox:latest', 'mine:v2']);
    expect(store.inspect('mine:v2').lastTagTime).toBeDefined();
    // A tag moves; the image it left stays.
    await store.tag(b.id, 'busybox');
    expect(store.resolve('busybox').id).toBe(b.id);
    expect(store.resolve(a.id).repoTags).toEqual(['mine:v2']);
    await store.untag('mine:v2');
    expect(store.resolve(a.id).repoTags).toEqual([]);
    await expect(store.untag('mine:v2')).rejects.toThrow(ImageNotFoundError);
    await expect(store.tag('busybox', `x@sha256:${'a'.repeat(64)}`)).rejects.toThrow(InvalidReferenceError);
    await expect(store.tag('nothing', 'x')).rejects.toThrow(ImageNotFoundError);
  });

  it('removes like docker rmi', async () => {
    await store.tag('busybox', 'busybox:two');
    // By name with other names left: only untags.
    expect(await store.remove('busybox:two')).toEqual({ untagged: ['busybox:two'], deleted: [], deletedLayers: [] });
    await store.tag('busybox', 'other');
    // By id while in two repositories: must be forced.
    await expect(store.remove(a.id)).rejects.toThrow(ImageConflictError);
    const r = await store.remove(a.id, { force: true });
    expect(r.untagged.sort()).toEqual(['busybox:latest', 'other:latest']);
    expect(r.deleted).toEqual([a.id]);
    // The layer is b's too.
    expect(r.deletedLayers).toEqual([]);
    expect(existsSync(store.blobPath(a.id))).toBe(false);
    expect(() => store.resolve(a.id)).toThrow(ImageNotFoundError);
    await expect(store.remove('busybox')).rejects.toThrow(ImageNotFoundError);
  });
});

describe('layers and removal', () => {
  it('shares a layer between images and deletes it with the last one', async () => {
    const src = makeRootfs(join(sandbox, 'src'));
    const one = await store.import(src, { ref: 'one' });
    const two = await store.import(src, { ref: 'two' });
    expect(one.id).not.toBe(two.id);
    expect(one.chainIds).toEqual(two.chainIds);
    const layerDir = join(root, 'layers', one.chainIds[0]!.slice(7));

    const r1 = await store.remove('one');
    expect(r1).toEqual({ untagged: ['one:latest'], deleted: [one.id], deletedLayers: [] });
    expect(existsSync(join(layerDir, 'diff', 'etc', 'hello'))).toBe(true);
    const r2 = await store.remove('two');
    expect(r2.deletedLayers).toEqual(two.chainIds);
    expect(existsSync(layerDir)).toBe(false);
    expect(readdirSync(join(root, 'layers'))).toEqual([]);
    expect(readdirSync(join(root, 'blobs', 'sha256'))).toEqual([]);
  });

  it('refuses to remove an image containers use, unless forced; forced, it keeps it untagged', async () => {
    const src = makeRootfs(join(sandbox, 'src'));
    const image = await store.import(src, { ref: 'busy' });
    const users = new Map<string, string[]>([[image.id, ['c1']]]);
    const usedBy = (id: string) => users.get(id) ?? [];

    await expect(store.remove('busy', { usedBy })).rejects.toThrow(ImageInUseError);
    await expect(store.remove(image.id, { usedBy })).rejects.toThrow(/c1/);
    expect(store.resolve('busy').id).toBe(image.id);

    const forced = await store.remove('busy', { usedBy, force: true });
    expect(forced).toEqual({ untagged: ['busy:latest'], deleted: [], deletedLayers: [] });
    // The container still has its files.
    expect(store.resolve(image.id).repoTags).toEqual([]);
    expect(existsSync(store.layerDirs(image)[0]!)).toBe(true);
    expect((await store.prune({ usedBy })).deleted).toEqual([]);

    users.clear();
    const pruned = await store.prune({ usedBy });
    expect(pruned.deleted).toEqual([image.id]);
    expect(pruned.deletedLayers).toEqual(image.chainIds);
    expect(store.list()).toEqual([]);
  });

  it('concurrent imports of the same content unpack one layer', async () => {
    const src = makeRootfs(join(sandbox, 'src'));
    const tar = join(sandbox, 'rootfs.tar');
    execFileSync('tar', ['-C', src, '-cf', tar, '.']);
    const images = await Promise.all([1, 2, 3].map((n) => store.import(tar, { ref: `c${n}` })));
    expect(new Set(images.map((i) => i.chainIds[0])).size).toBe(1);
    expect(readdirSync(join(root, 'layers'))).toEqual([images[0]!.chainIds[0]!.slice(7)]);
    expect(store.list()).toHaveLength(3);
  });
});

describe('registry hooks', () => {
  it('writes blobs atomically and verifies their digest', async () => {
    const data = Buffer.from('{"hello":"world"}');
    const wrong = `sha256:${'1'.repeat(64)}`;
    await expect(store.writeBlob(data, wrong)).rejects.toThrow(DigestMismatchError);
    expect(readdirSync(join(root, 'blobs', 'sha256'))).toEqual([]);
    expect(store.hasBlob(wrong)).toBe(false);

    const stream = (async function* () {
      yield data.subarray(0, 5);
      yield data.subarray(5);
    })();
    const { digest, size } = await store.writeBlob(stream, sha256(data));
    expect([digest, size]).toEqual([sha256(data), data.length]);
    expect(store.hasBlob(digest)).toBe(true);
    expect(readFileSync(store.blobPath(digest))).toEqual(data);
    expect(() => store.blobPath('md5:abc')).toThrow(InvalidOptionError);
  });

  it('adds a pulled image: layers by ChainID, config, manifest and repo digests', async () => {
    const src = makeRootfs(join(sandbox, 'src'));
    const tar = join(sandbox, 'layer.tar');
    execFileSync('tar', ['-C', src, '-cf', tar, '.']);
    execFileSync('gzip', ['-k', tar]);
    const gz = readFileSync(`${tar}.gz`);
    const diffId = sha256(readFileSync(tar));
    const config = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      created: '2024-01-01T00:00:00Z',
      config: { Cmd: ['sh'], Env: ['PATH=/bin'] },
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created_by: 'test' }],
    });
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(gz), size: gz.length }],
    });
    const indexDigest = `sha256:${'c'.repeat(64)}`;

    // Missing layer: refused.
    await expect(store.addImage(config, ['localhost:5000/app:1'])).rejects.toThrow(InvalidImageError);

    await store.writeBlob(gz, sha256(gz));
    const layer = await store.addLayer(createReadStream(store.blobPath(sha256(gz))), { parentChainId: null, diffId });
    expect(layer.blobDigest).toBe(sha256(gz));
    expect(store.hasLayer(diffId)).toBe(true);

    const bad = manifest.replace(sha256(config), `sha256:${'0'.repeat(64)}`);
    await expect(store.addImage(config, [], { bytes: bad })).rejects.toThrow(/manifest names config/);

    const image = await store.addImage(config, ['localhost:5000/app:1'], { bytes: manifest, repoDigest: indexDigest });
    expect(image.id).toBe(sha256(config));
    expect(image.manifestDigest).toBe(sha256(manifest));
    expect(image.repoTags).toEqual(['localhost:5000/app:1']);
    expect(image.repoDigests).toEqual([`localhost:5000/app@${indexDigest}`]);
    expect(store.resolve(`localhost:5000/app@${indexDigest}`).id).toBe(image.id);
    expect(store.config(image)).toEqual({ Cmd: ['sh'], Env: ['PATH=/bin'] });
    expect(store.hasBlob(sha256(manifest))).toBe(true);
    await expect(store.addImage('{"rootfs":1}')).rejects.toThrow(InvalidImageError);
    await expect(store.addImage('not json')).rejects.toThrow(/not JSON/);

    // Removing the tag takes the repository's digest reference with it, then the image, its layer and blobs.
    const r = await store.remove('localhost:5000/app:1');
    expect(r.untagged).toEqual(['localhost:5000/app:1', `localhost:5000/app@${indexDigest}`]);
    expect(r.deleted).toEqual([image.id]);
    expect(readdirSync(join(root, 'blobs', 'sha256'))).toEqual([]);
    expect(readdirSync(join(root, 'layers'))).toEqual([]);
  });

  it('cleans up temporaries of dead processes only', async () => {
    const dead = join(root, 'layers', 'tmp-999999999-abcdef');
    const live = join(root, 'layers', `tmp-${process.pid}-abcdef`);
    mkdirSync(join(dead, 'diff'), { recursive: true });
    mkdirSync(live);
    writeFileSync(join(root, 'blobs', 'sha256', '.tmp-999999999-0123'), 'partial');
    const removed = await store.removeLeftovers();
    expect(removed.sort()).toEqual(['.tmp-999999999-0123', 'tmp-999999999-abcdef']);
    expect(existsSync(live)).toBe(true);
    expect(existsSync(dead)).toBe(false);
  });
});
