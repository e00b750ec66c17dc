import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../src/index.js';
import { openTestEngine, type TestEngine } from './helpers/engine.js';

let t: TestEngine;
beforeAll(async () => {
  t = await openTestEngine();
});
afterAll(async () => {
  await t?.cleanup();
});

/** Host path of a cgroup file of `pid`, found from /proc/PID/cgroup (v1 controller or v2 unified). */
function cgroupFile(pid: number, controller: string, file: string): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  const v1 = lines.find((l) => l.split(':')[1]!.split(',').includes(controller));
  if (v1) {
    const rel = v1.split(':')[2]!;
    const mount = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .find((f) => f[f.indexOf('-') + 1] === 'cgroup' && (f[f.indexOf('-') + 3] ?? '').split(',').includes(controller));
    return `${mount![4]}${rel}/${file}`;
  }
  const rel = lines.find((l) => l.startsWith('0::'))!.slice(3);
  return `/sys/fs/cgroup${rel}/${file}`;
}

describe('resource limits', () => {
  it('OOM-kills a process over its memory limit and reports it', async () => {
    const events: string[] = [];
    t.engine.events.on('oom', (e) => events.push(e.id));
    const c = await t.engine.run({
      image: t.image,
      cmd: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=128M', 'count=1'],
      limits: { memory: '32m', memorySwap: '32m' },
    });
    const exit = await c.wait();
    expect(exit.oomKilled).toBe(true);
    expect(exit.exitCode).toBe(137);
    expect(c.inspect().State.OOMKilled).toBe(true);
    expect(events).toContain(c.id);
    await c.remove();
  });

  it('does not report OOM for a process within its limit', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['dd', 'if=/dev/zero', 'of=/dev/null', 'bs=1M', 'count=1'], limits: { memory: '64m' }, wait: true });
    expect(await c.wait()).toMatchObject({ exitCode: 0, oomKilled: false });
    await c.remove();
  });

  it('refuses fork beyond the pids limit', async () => {
    const script = 'ok=0; for i in $(seq 20); do if sleep 3 & then ok=$((ok+1)); fi; done; echo started=$ok; kill $(jobs -p) 2>/dev/null; true';
    const limited = await t.engine.run({ image: t.image, cmd: ['sh', '-c', script], limits: { pids: 8 }, wait: true });
    expect(await limited.logs()).toMatch(/can't fork|Resource temporarily unavailable/i);
    const free = await t.engine.run({ image: t.image, cmd: ['sh', '-c', script], wait: true });
    expect(await free.logs()).not.toMatch(/can't fork|Resource temporarily unavailable/i);
    await limited.remove();
    await free.remove();
  });

  it('writes cpu quota, shares and cpuset where the kernel reads them', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sleep', '30'], limits: { cpus: 1.5, cpuShares: 512, cpusetCpus: '0' } });
    const pid = c.pid!;
    const v1 = existsSync('/sys/fs/cgroup/cpu/cpu.cfs_quota_us');
    if (v1) {
      expect(readFileSync(cgroupFile(pid, 'cpu', 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('150000');
      expect(readFileSync(cgroupFile(pid, 'cpu', 'cpu.cfs_period_us'), 'utf8').trim()).toBe('100000');
      expect(readFileSync(cgroupFile(pid, 'cpu', 'cpu.shares'), 'utf8').trim()).toBe('512');
      expect(readFileSync(cgroupFile(pid, 'cpuset', 'cpuset.cpus'), 'utf8').trim()).toBe('0');
    } else {
      expect(readFileSync(cgroupFile(pid, 'cpu', 'cpu.max'), 'utf8').trim()).toBe('150000 100000');
      expect(readFileSync(cgroupFile(pid, 'cpuset', 'cpuset.cpus'), 'utf8').trim()).toBe('0');
    }
    // The process itself is confined to the cpuset.
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    expect(/Cpus_allowed_list:\s+(\S+)/.exec(status)![1]).toBe('0');
    await c.remove({ force: true });
  });

  it('removes the container cgroup when the container goes', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sleep', '30'], limits: { memory: '64m' } });
    const path = cgroupFile(c.pid!, 'memory', 'memory.limit_in_bytes').replace(/\/[^/]+$/, '');
    expect(existsSync(path)).toBe(true);
    await c.stop({ timeout: 0 });
    expect(existsSync(path)).toBe(false);
    await c.remove();
  });

  it.each([
    [{ memory: 'lots' }, 'limits.memory'],
    [{ memory: '1k' }, 'limits.memory'],
    [{ cpus: -1 }, 'limits.cpus'],
    [{ cpus: 512 }, 'limits.cpus'],
    [{ cpusetCpus: '0-999' }, 'limits.cpusetCpus'],
    [{ memory: '64m', memorySwap: '32m' }, 'limits.memorySwap'],
  ])('refuses invalid limits %j naming the option', async (limits, option) => {
    const before = t.engine.listContainers({ all: true }).length;
    const err = await t.engine.run({ image: t.image, cmd: ['true'], limits }).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as InvalidOptionError).option).toBe(option);
    expect(t.engine.listContainers({ all: true }).length).toBe(before);
  });
});
