import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Wait, type ContainerEvent } from '../src/index.js';
import { openTestEngine, type TestEngine } from './helpers/engine.js';

let t: TestEngine;
beforeAll(async () => {
  t = await openTestEngine();
});
afterAll(async () => {
  await t?.cleanup();
});

describe('container lifecycle', () => {
  it('creates, starts, waits and removes, with Docker-like inspect and events', async () => {
    const events: ContainerEvent[] = [];
    const listener = (e: ContainerEvent) => events.push(e);
    t.engine.events.on('event', listener);
    const c = await t.engine.create({ image: t.image, cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'], name: 'life-1', labels: { suite: 'lifecycle' } });
    expect(c.state.status).toBe('created');
    expect(c.inspect()).toMatchObject({ Name: '/life-1', State: { Status: 'created', Running: false }, Config: { Cmd: ['sh', '-c', 'echo out; echo err >&2; exit 3'], Labels: { suite: 'lifecycle' } } });
    await c.start();
    const exit = await c.wait();
    expect(exit).toEqual({ exitCode: 3, oomKilled: false });
    expect(c.inspect().State).toMatchObject({ Status: 'exited', ExitCode: 3, Running: false });
    expect(await c.logs({ stderr: false })).toBe('out\n');
    expect(await c.logs({ stdout: false })).toBe('err\n');
    const dir = join(t.root, 'containers', c.id);
    expect(existsSync(dir)).toBe(true);
    await c.remove();
    expect(existsSync(dir)).toBe(false);
    t.engine.events.off('event', listener);
    expect(events.filter((e) => e.id === c.id).map((e) => e.action)).toEqual(['create', 'start', 'die', 'destroy']);
    expect(events.find((e) => e.action === 'die')!.attributes.exitCode).toBe('3');
  });

  it('lists running containers, or all, filtered by label', async () => {
    const a = await t.engine.run({ image: t.image, cmd: ['sleep', '30'], labels: { grp: 'x' } });
    const b = await t.engine.create({ image: t.image, cmd: ['true'], labels: { grp: 'x' } });
    expect(t.engine.listContainers({ labels: { grp: 'x' } }).map((c) => c.id)).toEqual([a.id]);
    expect(t.engine.listContainers({ all: true, labels: { grp: 'x' } }).map((c) => c.id).sort()).toEqual([a.id, b.id].sort());
    expect(t.engine.getContainer(a.name)).toBe(a);
    expect(t.engine.getContainer(a.id.slice(0, 10))).toBe(a);
    await a.remove({ force: true });
    await b.remove();
  });

  it('stops with the stop signal, then SIGKILL after the timeout', async () => {
    // sh as PID 1 ignores SIGTERM (no handler), as under Docker: stop must fall back to SIGKILL.
    const stubborn = await t.engine.run({ image: t.image, cmd: ['sleep', '60'] });
    const t0 = Date.now();
    const r = await stubborn.stop({ timeout: 0.3 });
    expect(r.exitCode).toBe(137);
    expect(r.signal).toBe('SIGKILL');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    // A process that handles SIGTERM exits by itself.
    const polite = await t.engine.run({ image: t.image, cmd: ['sh', '-c', 'trap "exit 7" TERM; while true; do sleep 0.1; done'] });
    await new Promise((r) => setTimeout(r, 200));
    expect((await polite.stop({ timeout: 10 })).exitCode).toBe(7);
    await stubborn.remove();
    await polite.remove();
  });

  it('kills with a chosen signal and restarts keeping the filesystem', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sh', '-c', 'echo run >> /state; sleep 60'] });
    await c.kill('SIGKILL');
    expect((await c.wait()).exitCode).toBe(137);
    await c.restart({ timeout: 0 });
    expect(c.isRunning).toBe(true);
    expect(c.inspect().RestartCount).toBe(1);
    const { stdout } = await c.exec(['cat', '/state']);
    expect(stdout).toBe('run\nrun\n');
    await c.remove({ force: true });
  });

  it('refuses to remove a running container without force', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sleep', '30'] });
    await expect(c.remove()).rejects.toMatchObject({ code: 'ERR_CONTAINER_STATE' });
    await c.remove({ force: true });
    expect(() => t.engine.getContainer(c.id)).toThrow(/no such container/);
  });

  it('auto-removes on exit (--rm)', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['true'], autoRemove: true });
    await c.wait();
    await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(join(t.root, 'containers', c.id))).toBe(false);
  });

  it('merges env, entrypoint, cmd and workdir as Docker does', async () => {
    const c = await t.engine.run({
      image: t.image,
      entrypoint: ['sh', '-c', 'echo "$A|$B|$PATH|$HOSTNAME|$(pwd)"'],
      env: { A: '1', B: 'two words' },
      workdir: '/made/by/docker',
      hostname: 'hn',
      wait: true,
    });
    expect(await c.logs()).toBe('1|two words|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin|hn|/made/by/docker\n');
    await c.remove();
  });

  it('attaches stdout live and takes stdin', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sh', '-c', 'read line; echo "got $line"'], openStdin: true });
    const chunks: Buffer[] = [];
    c.stdout!.on('data', (b: Buffer) => chunks.push(b));
    c.stdin!.end('hello\n');
    await c.wait();
    expect(Buffer.concat(chunks).toString()).toBe('got hello\n');
    await c.remove();
  });

  it('runs with a tty', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sh', '-c', 'tty; test -t 1 && echo is-a-tty'], tty: true, wait: true });
    const out = await c.logs();
    expect(out).toMatch(/\/dev\/pts\/0/);
    expect(out).toMatch(/is-a-tty/);
    await c.remove();
  });

  it('binds host paths, named volumes and tmpfs', async () => {
    const host = mkdtempSync('/tmp/dockless-bind-');
    writeFileSync(join(host, 'in.txt'), 'from host\n');
    try {
      const c = await t.engine.run({
        image: t.image,
        cmd: ['sh', '-c', 'cat /data/in.txt; echo out > /data/out.txt; echo v > /vol/f; touch /ro/x 2>/dev/null || echo ro-refused; grep -c " /scratch tmpfs" /proc/mounts'],
        volumes: [`${host}:/data`, 'testvol:/vol', { type: 'bind', source: host, target: '/ro', readonly: true }, { type: 'tmpfs', target: '/scratch' }],
        wait: true,
      });
      expect(await c.logs()).toBe('from host\nro-refused\n1\n');
      expect(readFileSync(join(host, 'out.txt'), 'utf8')).toBe('out\n');
      expect(readFileSync(join(t.engine.volumes.inspect('testvol').Mountpoint, 'f'), 'utf8')).toBe('v\n');
      expect(() => t.engine.volumes.remove('testvol')).toThrow(/in use/);
      await c.remove();
      t.engine.volumes.remove('testvol');
    } finally {
      rmSync(host, { recursive: true, force: true });
    }
  });

  it('waits for a log message before run resolves', async () => {
    const c = await t.engine.run({
      image: t.image,
      cmd: ['sh', '-c', 'sleep 0.2; echo ready; sleep 30'],
      waitStrategy: Wait.forLogMessage('ready'),
    });
    expect(await c.logs()).toBe('ready\n');
    await c.remove({ force: true });
  });

  it('waits for a listening port', async () => {
    const c = await t.engine.run({
      image: t.image,
      cmd: ['sh', '-c', 'sleep 0.2; nc -l -p 8080'],
      waitStrategy: Wait.forListeningPorts(8080).withStartupTimeout(5000),
    });
    expect(c.isRunning).toBe(true);
    await c.remove({ force: true });
  });

  it('removes the container when the wait strategy times out', async () => {
    const before = t.engine.listContainers({ all: true }).length;
    await expect(
      t.engine.run({ image: t.image, cmd: ['sleep', '30'], waitStrategy: Wait.forLogMessage('never').withStartupTimeout(200) }),
    ).rejects.toMatchObject({ code: 'ERR_CONTAINER_NOT_READY' });
    expect(t.engine.listContainers({ all: true }).length).toBe(before);
  });

  it('is disposable with await using', async () => {
    let id: string;
    {
      await using c = await t.engine.run({ image: t.image, cmd: ['sleep', '30'] });
      id = c.id;
      expect(c.isRunning).toBe(true);
    }
    expect(() => t.engine.getContainer(id)).toThrow(/no such container/);
  });
});
