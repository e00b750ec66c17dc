import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandNotFoundError, ContainerStateError } from '../src/index.js';
import { openTestEngine, type TestEngine } from './helpers/engine.js';

let t: TestEngine;
beforeAll(async () => {
  t = await openTestEngine();
});
afterAll(async () => {
  await t?.cleanup();
});

describe('exec', () => {
  it('joins the container: same PID namespace, hostname, filesystem and cgroup', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sh', '-c', 'echo hi > /marker; exec sleep 30'], hostname: 'box', limits: { pids: 50 } });
    await new Promise((r) => setTimeout(r, 100));
    const r = await c.exec(['sh', '-c', 'hostname; cat /marker; cat /proc/1/cmdline | tr "\\0" " "; echo; echo $$']);
    const [h, marker, pid1, self] = r.stdout.trim().split('\n');
    expect(h).toBe('box');
    expect(marker).toBe('hi');
    expect(pid1!.trim()).toBe('sleep 30');
    expect(Number(self)).toBeGreaterThan(1);
    expect(Number(self)).toBeLessThan(100);
    const cg = await c.exec(['cat', '/proc/self/cgroup']);
    expect(cg.stdout).toMatch(/pids:\/(\n|$)|0::\/(\n|$)/); // inside its own cgroup namespace: the container cgroup is the root
    const status = await c.exec(['grep', '-E', '^(CapEff|NoNewPrivs|Seccomp):', '/proc/self/status']);
    expect(status.stdout).toMatch(/CapEff:\s+00000000a80425fb/);
    expect(status.stdout).toMatch(/Seccomp:\s+2/);
    await c.remove({ force: true });
  });

  it('returns exit codes, separates streams, takes stdin, env, user and workdir', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sleep', '30'] });
    const r = await c.exec(['sh', '-c', 'echo o; echo e >&2; exit 5']);
    expect(r).toMatchObject({ exitCode: 5, stdout: 'o\n', stderr: 'e\n' });
    const r2 = await c.exec(['sh', '-c', 'cat; echo "$X $(id -u) $(pwd)"'], { stdin: 'in-', env: { X: 'y' }, user: 'nobody', workdir: '/tmp' });
    expect(r2.stdout).toBe('in-y 65534 /tmp\n');
    await c.remove({ force: true });
  });

  it('rejects a missing command with CommandNotFoundError (exit 127)', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sleep', '30'] });
    const err = await c.exec(['no-such-thing']).catch((e) => e);
    expect(err).toBeInstanceOf(CommandNotFoundError);
    expect((err as CommandNotFoundError).exitCode).toBe(127);
    await c.remove({ force: true });
  });

  it('refuses exec into a stopped container', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['true'], wait: true });
    await expect(c.exec(['true'])).rejects.toBeInstanceOf(ContainerStateError);
    await c.remove();
  });
});

describe('logs', () => {
  it('keeps Docker json-file logs with tail, since and timestamps', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sh', '-c', 'for i in 1 2 3 4 5; do echo line$i; done; echo err >&2'], wait: true });
    expect(await c.logs({ tail: 2 })).toBe('line5\nerr\n');
    expect(await c.logs({ tail: 2, stderr: false })).toBe('line4\nline5\n');
    expect(await c.logs({ since: new Date(Date.now() + 60_000) })).toBe('');
    const stamped = await c.logs({ timestamps: true, tail: 1 });
    expect(stamped).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z err\n$/);
    const { readFileSync } = await import('node:fs');
    const first = JSON.parse(readFileSync(c.logPath, 'utf8').split('\n')[0]!);
    expect(first).toMatchObject({ log: 'line1\n', stream: 'stdout' });
    expect(typeof first.time).toBe('string');
    await c.remove();
  });

  it('follows logs until the container exits', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sh', '-c', 'echo a; sleep 0.2; echo b; sleep 0.2; echo c'] });
    const lines: string[] = [];
    for await (const e of c.followLogs()) lines.push(e.line);
    expect(lines).toEqual(['a', 'b', 'c']);
    await c.remove();
  });

  it('follow stops on abort', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sh', '-c', 'echo a; sleep 30'] });
    const ac = new AbortController();
    const lines: string[] = [];
    for await (const e of c.followLogs({ signal: ac.signal })) {
      lines.push(e.line);
      ac.abort();
    }
    expect(lines).toEqual(['a']);
    await c.remove({ force: true });
  });
});
