/**
 * The cgroup drivers, for real: one suite run against every driver this host
 * can run — v1 (with and without a freezer) on the v1 hierarchies and v2 on
 * the cgroup2 mount — plus unit tests of the limit notations, the v1/v2 write
 * plans and the layout detection.
 *
 * Processes join a cgroup the way the native spawn's child does: through the
 * fds placement() hands out (v1: a write of "0" to each cgroup.procs fd; v2:
 * through the directory fd), so placement is tested too.
 *
 * Every cgroup lives under a per-run parent `dockless-test-<random>-<driver>`,
 * so the tests never meet a real engine's cgroups; afterAll kills every process
 * the tests started and removes every such directory, also after a failure.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { InvalidOptionError, UnsupportedError } from '../src/errors.js';
import {
  CgroupV1Driver, CgroupV2Driver, chooseCgroupVersion, cpuSharesToWeight, blkioWeightToIoWeight, detectCgroupDriver,
  hostCpuInfo, parseByteSize, parseCgroupMounts, parseCpuList, parseLimits, readCgroupLayout,
  type Cgroup, type CgroupDriver, type CgroupLayout, type HostCpuInfo,
} from '../src/isolation/cgroup/index.js';
import { v1LimitWrites, type V1Features } from '../src/isolation/cgroup/v1.js';
import { v2LimitWrites, type V2Features } from '../src/isolation/cgroup/v2.js';

const MiB = 1024 * 1024;
const RUN = randomBytes(4).toString('hex');
const layout = readCgroupLayout();
const newId = (): string => randomBytes(32).toString('hex');
const read = (path: string): string => fs.readFileSync(path, 'latin1').trim();

// ---------------------------------------------------------------------------
// Processes and cleanup

const started: ChildProcess[] = [];

interface Placed {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

/**
 * Starts `argv` inside `cg`: a shell joins the cgroup through the placement fds
 * (inherited as fds 3..), then execs argv — what the native child does before
 * exec. Resolves once the kernel lists the process in the cgroup and argv runs.
 */
async function spawnIn(cg: Cgroup, argv: string[]): Promise<Placed> {
  const { spec, release } = cg.placement();
  const fds = spec.dirFd !== undefined ? [spec.dirFd] : spec.procsFds!;
  const join =
    spec.dirFd !== undefined
      ? 'echo 0 > /proc/self/fd/3/cgroup.procs || exit 99'
      : `for f in ${fds.map((_, i) => i + 3).join(' ')}; do eval "echo 0 >&$f" || exit 99; done`;
  let child: ChildProcess;
  try {
    // The shell says when it has joined every hierarchy, then waits on stdin, so a
    // short-lived argv cannot finish before we look.
    child = spawn('sh', ['-c', `${join}; echo joined; read _ || exit 98; exec "$@"`, 'sh', ...argv], { stdio: ['pipe', 'pipe', 'pipe', ...fds] });
  } finally {
    release();
  }
  started.push(child);
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const pid = child.pid!;
  await until(() => out.includes('joined\n') || child.exitCode !== null, `pid ${pid} to join the cgroup`);
  if (!cg.pids().includes(pid)) throw new Error(`the child did not join the cgroup (exit ${child.exitCode}): ${err}`);
  child.stdin!.end('go\n');
  return { child, pid, exited, stderr: () => err };
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function killStarted(): void {
  for (const c of started) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  }
}

/** Removes a directory tree of cgroups, deepest first (rmdir is how cgroups go; rm -r would fail on their files). */
function rmCgroupTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rmCgroupTree(join(dir, e.name));
  for (let i = 0; ; i++) {
    try {
      fs.rmdirSync(dir);
      return;
    } catch (err) {
      if (i > 200) throw err;
      for (const pid of read(join(dir, 'cgroup.procs')).split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
  }
}

// ---------------------------------------------------------------------------
// The drivers under test

interface Target {
  name: string;
  parent: string;
  /** Why this driver cannot run on this host, if it cannot. */
  unavailable?: string;
  make(): CgroupDriver;
  /** Every directory the driver should make for container `id`. */
  dirs(id: string): string[];
  /** The container directory holding `controller`'s files (v1 controller names; v2 ignores it). */
  dir(id: string, controller: string): string;
}

function v1Target(name: string, mounts: CgroupLayout['v1']): Target {
  const parent = `dockless-test-${RUN}-${name.replace(/\W+/g, '')}`;
  const present = Object.entries(mounts).filter(([, m]) => m !== undefined) as [string, string][];
  return {
    name,
    parent,
    unavailable: present.length === 0 ? 'no cgroup v1 controllers are mounted on this host' : undefined,
    make: () => new CgroupV1Driver({ mounts, parent }),
    dirs: (id) => [...new Set(present.map(([, m]) => join(m, parent, id)))],
    dir: (id, c) => join((mounts as Record<string, string>)[c]!, parent, id),
  };
}

const v2Parent = `dockless-test-${RUN}-v2`;
const targets: Target[] = [
  v1Target('v1', layout.v1),
  v1Target('v1 without freezer', { ...layout.v1, freezer: undefined }),
  {
    name: 'v2',
    parent: v2Parent,
    unavailable: layout.unified === undefined ? 'no cgroup2 filesystem is mounted on this host' : undefined,
    make: () => new CgroupV2Driver({ mount: layout.unified!, parent: v2Parent }),
    dirs: (id) => [join(layout.unified!, v2Parent, id)],
    dir: (id) => join(layout.unified!, v2Parent, id),
  },
];

afterAll(async () => {
  killStarted();
  await Promise.all(started.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : null)));
  // The safety net does not trust the code under test: raw rmdir of every test parent.
  const roots = new Set([...Object.values(layout.v1).filter((m): m is string => m !== undefined), ...(layout.unified ? [layout.unified] : [])]);
  for (const root of roots) for (const t of targets) rmCgroupTree(join(root, t.parent));
});

// ---------------------------------------------------------------------------
// The shared suite

describe.each(targets)('cgroup driver $name', (target) => {
  const run = target.unavailable ? describe.skip : describe;
  run(target.unavailable ? `skipped: ${target.unavailable}` : 'on the real kernel', () => {
    const driver = target.unavailable ? (undefined as unknown as CgroupDriver) : target.make();
    const made: Cgroup[] = [];
    const create = (limits: Parameters<CgroupDriver['create']>[1] = {}): Cgroup => {
      const cg = driver.create(newId(), limits);
      made.push(cg);
      return cg;
    };
    /** Skips the test with a reason when the driver lacks `controller` (v2 on a hybrid host has none). */
    const needs = (ctx: { skip: (note?: string) => void }, ...controllers: string[]): void => {
      const missing = [...new Set(controllers)].filter((c) => !driver.controllers().includes(c));
      if (missing.length) ctx.skip(`the ${missing.join(', ')} controller(s) are not available to the ${target.name} driver on this host`);
    };
    const v2 = (): boolean => driver.version === 2;

    afterEach(() => {
      killStarted();
      for (const cg of made.splice(0)) cg.destroy();
    });
    afterAll(() => {
      driver.removeParentIfEmpty();
      for (const t of target.dirs('')) expect(fs.existsSync(t)).toBe(false);
    });

    it('creates the directories, lists and opens the cgroup', () => {
      const cg = create();
      for (const d of target.dirs(cg.id)) expect(fs.statSync(d).isDirectory()).toBe(true);
      expect(driver.list()).toContain(cg.id);
      expect(driver.open(cg.id)?.id).toBe(cg.id);
      expect(driver.open(newId())).toBeNull();
      expect(cg.pids()).toEqual([]);
      expect(cg.oomKilled()).toBe(false);
    });

    it('refuses an id that is not one safe path component', () => {
      for (const bad of ['../escape', 'a/b', '', '.hidden']) {
        expect(() => driver.create(bad, {})).toThrow(InvalidOptionError);
      }
      expect(fs.existsSync(join(target.dirs('')[0]!, '..', 'escape'))).toBe(false);
    });

    it('refuses to create a cgroup twice', () => {
      const cg = create();
      expect(() => driver.create(cg.id, {})).toThrow(/mkdir failed: EEXIST/);
      for (const d of target.dirs(cg.id)) expect(fs.existsSync(d)).toBe(true);
    });

    it('hands out placement fds that put a process in the cgroup, and closes them on release', async () => {
      const cg = create();
      const { spec, release } = cg.placement();
      if (v2()) {
        expect(spec.procsFds).toBeUndefined();
        const st = fs.fstatSync(spec.dirFd!);
        expect(st.isDirectory()).toBe(true);
        expect(st.ino).toBe(fs.statSync(target.dirs(cg.id)[0]!).ino);
        // O_DIRECTORY (0200000 on x86-64) and read-only, as CLONE_INTO_CGROUP wants.
        const flags = parseInt(/flags:\s+(\d+)/.exec(read(`/proc/self/fdinfo/${spec.dirFd}`))![1]!, 8);
        expect(flags & fs.constants.O_DIRECTORY).toBe(fs.constants.O_DIRECTORY);
        expect(flags & 3).toBe(fs.constants.O_RDONLY);
      } else {
        expect(spec.dirFd).toBeUndefined();
        const targetsOfFds = spec.procsFds!.map((fd) => fs.readlinkSync(`/proc/self/fd/${fd}`)).sort();
        expect(targetsOfFds).toEqual(target.dirs(cg.id).map((d) => join(d, 'cgroup.procs')).sort());
      }
      const fds = spec.dirFd !== undefined ? [spec.dirFd] : spec.procsFds!;
      release();
      release();
      for (const fd of fds) expect(() => fs.fstatSync(fd)).toThrow(/EBADF/);

      const p = await spawnIn(cg, ['sleep', '100']);
      expect(cg.pids()).toEqual([p.pid]);
      // The kernel agrees, in as many hierarchies as the driver made directories in.
      const lines = read(`/proc/${p.pid}/cgroup`).split('\n').filter((l) => l.endsWith(`/${target.parent}/${cg.id}`));
      expect(lines.length).toBe(target.dirs(cg.id).length);
    });

    it('killAll kills every process, children included', async () => {
      const cg = create();
      const p = await spawnIn(cg, ['sh', '-c', 'sleep 100 & sleep 100 & wait']);
      await until(() => cg.pids().length === 3, 'the shell and its two children');
      cg.killAll();
      expect(await p.exited).toEqual({ code: null, signal: 'SIGKILL' });
      await until(() => cg.pids().length === 0, 'the cgroup to empty');
      // Frozen and thawed again (v1 with freezer): a later process runs normally.
      const q = await spawnIn(cg, ['sh', '-c', 'sleep 0.2; exit 7']);
      expect((await q.exited).code).toBe(7);
    });

    it('destroy kills what is left and removes every directory; twice is fine', async () => {
      const cg = create();
      const p = await spawnIn(cg, ['sh', '-c', 'sleep 100 & exec sleep 100']);
      cg.destroy();
      for (const d of target.dirs(cg.id)) expect(fs.existsSync(d)).toBe(false);
      expect((await p.exited).signal).toBe('SIGKILL');
      cg.destroy();
      expect(driver.open(cg.id)).toBeNull();
      expect(driver.list()).not.toContain(cg.id);
    });

    it('destroy removes cgroups the container made inside its own', async () => {
      const cg = create();
      const nested = target.dirs(cg.id).map((d) => join(d, 'inner'));
      for (const d of nested) fs.mkdirSync(d);
      cg.destroy();
      for (const d of [...nested, ...target.dirs(cg.id)]) expect(fs.existsSync(d)).toBe(false);
    });

    it('a limit needing a controller the driver lacks throws UnsupportedError and creates nothing', (ctx) => {
      const probes: [string, Parameters<CgroupDriver['create']>[1]][] = [
        ['memory', { memory: 64 * MiB }],
        ['pids', { pidsLimit: 10 }],
        ['cpu', { cpuShares: 512 }],
      ];
      const probe = probes.find(([c]) => !driver.controllers().includes(c));
      if (!probe) return ctx.skip(`the ${target.name} driver has memory, pids and cpu on this host`);
      const id = newId();
      expect(() => driver.create(id, probe[1])).toThrow(UnsupportedError);
      expect(() => driver.create(id, probe[1])).toThrow(new RegExp(`limits\\.\\w+ .*the ${probe[0]} cgroup controller`));
      for (const d of target.dirs(id)) expect(fs.existsSync(d)).toBe(false);
    });

    it('reports cpu usage like docker stats', async () => {
      const cg = create();
      const p = await spawnIn(cg, ['sh', '-c', 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done']);
      await p.exited;
      const s = cg.stats();
      expect(s.cpu!.usageNs).toBeGreaterThan(1e6);
      expect(s.cpu!.userNs + s.cpu!.systemNs).toBeGreaterThan(0);
    });

    it('memory limit: written, OOM-kills a hog and reports it', async (ctx) => {
      needs(ctx, 'memory');
      const cg = create(parseLimits({ memory: '32m' }));
      if (v2()) {
        expect(read(join(target.dir(cg.id, 'memory'), 'memory.max'))).toBe(String(32 * MiB));
      } else {
        expect(read(join(target.dir(cg.id, 'memory'), 'memory.limit_in_bytes'))).toBe(String(32 * MiB));
        const memsw = join(target.dir(cg.id, 'memory'), 'memory.memsw.limit_in_bytes');
        if (fs.existsSync(memsw)) expect(read(memsw)).toBe(String(64 * MiB));
      }
      expect(cg.stats().memory!.limit).toBe(32 * MiB);

      const small = await spawnIn(cg, ['python3', '-c', 'b = bytearray(4 << 20)']);
      expect(await small.exited).toEqual({ code: 0, signal: null });
      expect(cg.oomKilled()).toBe(false);

      // bytearray(n) zero-fills, so every page is touched.
      const hog = await spawnIn(cg, ['python3', '-c', 'b = bytearray(300 << 20)']);
      expect((await hog.exited).signal).toBe('SIGKILL');
      expect(cg.oomKilled()).toBe(true);
      expect(cg.stats().memory!.maxUsage ?? 32 * MiB).toBeLessThanOrEqual(64 * MiB);
    });

    it('memory update raises and lowers memory and swap in an order the kernel accepts', (ctx) => {
      needs(ctx, 'memory');
      const cg = create(parseLimits({ memory: '32m' }));
      const dir = target.dir(cg.id, 'memory');
      const [memFile, swapFile] = v2() ? ['memory.max', 'memory.swap.max'] : ['memory.limit_in_bytes', 'memory.memsw.limit_in_bytes'];
      const withSwap = fs.existsSync(join(dir, swapFile!));
      const swapValue = (mem: number, memsw: number): string => String(v2() ? memsw - mem : memsw);
      // Up: memsw must grow before memory may pass the old memsw (v1).
      cg.update(withSwap ? { memory: 128 * MiB, memorySwap: 256 * MiB } : { memory: 128 * MiB });
      expect(read(join(dir, memFile!))).toBe(String(128 * MiB));
      if (withSwap) expect(read(join(dir, swapFile!))).toBe(swapValue(128 * MiB, 256 * MiB));
      // Down below the old memory limit: memory must shrink before memsw may (v1).
      cg.update(withSwap ? { memory: 16 * MiB, memorySwap: 20 * MiB } : { memory: 16 * MiB });
      expect(read(join(dir, memFile!))).toBe(String(16 * MiB));
      if (withSwap) expect(read(join(dir, swapFile!))).toBe(swapValue(16 * MiB, 20 * MiB));
      // Lifted.
      cg.update({ memory: -1 });
      expect(cg.stats().memory!.limit).toBeNull();
      if (withSwap) expect(['max', '-1'].includes(read(join(dir, swapFile!))) || Number(read(join(dir, swapFile!))) >= 2 ** 60).toBe(true);
    });

    it('pids limit: written, and fork beyond it fails', async (ctx) => {
      needs(ctx, 'pids');
      const cg = create(parseLimits({ pidsLimit: 10 }));
      expect(read(join(target.dir(cg.id, 'pids'), 'pids.max'))).toBe('10');
      // The shell gives up at the first fork the kernel refuses; what it started stays.
      const p = await spawnIn(cg, ['sh', '-c', 'for i in $(seq 50); do sleep 10 & done']);
      expect((await p.exited).code).not.toBe(0);
      expect(p.stderr()).toMatch(/fork/i);
      const s = cg.stats();
      expect(s.pids!.limit).toBe(10);
      expect(s.pids!.current).toBeGreaterThan(0);
      expect(s.pids!.current).toBeLessThanOrEqual(10);
      expect(cg.pids().length).toBe(s.pids!.current);
      cg.update({ pidsLimit: -1 });
      expect(read(join(target.dir(cg.id, 'pids'), 'pids.max'))).toBe('max');
      cg.killAll();
      await until(() => cg.pids().length === 0, 'the cgroup to empty');
    });

    it('cpu quota: written, and a busy loop is throttled to it', async (ctx) => {
      needs(ctx, 'cpu', v2() ? 'cpu' : 'cpuacct');
      const cg = create(parseLimits({ cpuQuota: 10_000, cpuPeriod: 100_000, cpuShares: 512 }));
      const dir = target.dir(cg.id, 'cpu');
      if (v2()) {
        expect(read(join(dir, 'cpu.max'))).toBe('10000 100000');
        expect(read(join(dir, 'cpu.weight'))).toBe(String(cpuSharesToWeight(512)));
      } else {
        expect(read(join(dir, 'cpu.cfs_quota_us'))).toBe('10000');
        expect(read(join(dir, 'cpu.cfs_period_us'))).toBe('100000');
        expect(read(join(dir, 'cpu.shares'))).toBe('512');
      }
      const t0 = Date.now();
      const p = await spawnIn(cg, ['sh', '-c', 'while :; do :; done']);
      await sleep(600);
      const s = cg.stats();
      const wall = (Date.now() - t0) * 1e6;
      cg.killAll();
      await p.exited;
      // 10% of one CPU, with a period of slack either way.
      expect(s.cpu!.usageNs).toBeLessThan(0.1 * wall + 100e6);
      expect(s.cpu!.throttling!.throttledPeriods).toBeGreaterThan(0);
      // Update keeps the period when only the quota changes.
      cg.update({ cpuQuota: -1 });
      expect(read(join(dir, v2() ? 'cpu.max' : 'cpu.cfs_quota_us'))).toBe(v2() ? 'max 100000' : '-1');
    });

    it('cpuset: written, and the process may run only there', async (ctx) => {
      needs(ctx, 'cpuset');
      const cpu = String(Math.max(...parseCpuList('x', hostCpuInfo().onlineCpus)));
      const cg = create(parseLimits({ cpusetCpus: cpu, cpusetMems: '0' }));
      expect(read(join(target.dir(cg.id, 'cpuset'), 'cpuset.cpus'))).toBe(cpu);
      expect(read(join(target.dir(cg.id, 'cpuset'), 'cpuset.mems'))).toBe('0');
      const p = await spawnIn(cg, ['sleep', '100']);
      expect(/Cpus_allowed_list:\s+(\S+)/.exec(read(`/proc/${p.pid}/status`))![1]).toBe(cpu);
    });

    it('cpuset: a cgroup without a cpuset limit inherits every CPU and accepts processes', async () => {
      const cg = create();
      const p = await spawnIn(cg, ['sleep', '100']);
      expect(/Cpus_allowed_list:\s+(\S+)/.exec(read(`/proc/${p.pid}/status`))![1]).toBe(hostCpuInfo().onlineCpus);
    });

    it('block IO throttles and weight are written for a real device', (ctx) => {
      needs(ctx, v2() ? 'io' : 'blkio');
      const dev = fs.readdirSync('/sys/block').find((d) => !/^(loop|ram|zram)/.test(d));
      if (!dev) return ctx.skip('no block device to throttle');
      const [major, minor] = read(`/sys/block/${dev}/dev`).split(':').map(Number) as [number, number];
      const cg = create(parseLimits({ deviceReadBps: [`/dev/${dev}:1mb`], deviceWriteIops: [{ path: `/dev/${dev}`, rate: 100 }] }));
      const dir = target.dir(cg.id, 'blkio');
      if (v2()) {
        expect(read(join(dir, 'io.max'))).toMatch(new RegExp(`^${major}:${minor} rbps=1048576 wbps=max riops=max wiops=100$`, 'm'));
      } else {
        expect(read(join(dir, 'blkio.throttle.read_bps_device'))).toBe(`${major}:${minor} 1048576`);
        expect(read(join(dir, 'blkio.throttle.write_iops_device'))).toBe(`${major}:${minor} 100`);
      }
      let weighted: Cgroup | undefined;
      try {
        weighted = create(parseLimits({ blkioWeight: 500 }));
      } catch (err) {
        // Only when the kernel has neither weight file (no CFQ/BFQ/iocost).
        expect(err).toBeInstanceOf(UnsupportedError);
        return;
      }
      const files = v2() ? ['io.bfq.weight', 'io.weight'] : ['blkio.weight', 'blkio.bfq.weight'];
      const file = files.find((f) => fs.existsSync(join(target.dir(weighted!.id, 'blkio'), f)))!;
      const expected = file === 'io.weight' ? String(blkioWeightToIoWeight(500)) : '500';
      expect(read(join(target.dir(weighted.id, 'blkio'), file))).toMatch(new RegExp(`(^|default )${expected}$`, 'm'));
    });

    it('leaves nothing behind when a limit write fails', (ctx) => {
      needs(ctx, 'cpuset');
      const id = newId();
      // Valid syntax that parseLimits would refuse (CPU 4095 is not online) reaches the kernel, which says EINVAL.
      expect(() => driver.create(id, { cpusetCpus: '4095' })).toThrow(/write failed: E(INVAL|NOSPC|RANGE)|errno/);
      for (const d of target.dirs(id)) expect(fs.existsSync(d)).toBe(false);
    });
  });
});

describe('detectCgroupDriver on this host', () => {
  it('chooses by the mounts in /proc/self/mountinfo', () => {
    const d = detectCgroupDriver({ parent: `dockless-test-${RUN}-detect` });
    expect(d.version).toBe(chooseCgroupVersion(layout));
    expect(d.parent).toBe(`dockless-test-${RUN}-detect`);
    // Detection creates nothing.
    expect(d.list()).toEqual([]);
    for (const root of [...Object.values(layout.v1), layout.unified]) if (root) expect(fs.existsSync(join(root, d.parent))).toBe(false);
  });

  it('refuses a parent that is not one safe path component', () => {
    expect(() => detectCgroupDriver({ parent: '../../etc' })).toThrow(InvalidOptionError);
  });
});

// ---------------------------------------------------------------------------
// Layout detection from mountinfo fixtures

const HYBRID = `
24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;
const PURE_V2 = `
25 21 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:3 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;
const V1_COMOUNTED = `
30 25 0:26 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
34 25 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
35 25 0:31 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
36 25 0:32 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,cpuset,clone_children
37 25 0:33 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,blkio
38 25 0:34 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,freezer
90 30 0:29 / /mnt/other\\040dir rw,relatime - cgroup cgroup rw,cpu,cpuacct
`;

describe('cgroup layout detection', () => {
  it('hybrid: v1 controllers and a controller-less cgroup2 → v1', () => {
    const l = parseCgroupMounts(HYBRID);
    expect(l.v1).toEqual({
      cpu: '/sys/fs/cgroup/cpu', cpuacct: '/sys/fs/cgroup/cpuacct', cpuset: '/sys/fs/cgroup/cpuset', memory: '/sys/fs/cgroup/memory',
      freezer: '/sys/fs/cgroup/freezer', blkio: '/sys/fs/cgroup/blkio', pids: '/sys/fs/cgroup/pids',
    });
    expect(l.unified).toBe('/sys/fs/cgroup/unified');
    expect(chooseCgroupVersion(l)).toBe(1);
  });

  it('pure v2 → v2 on /sys/fs/cgroup', () => {
    const l = parseCgroupMounts(PURE_V2);
    expect(l).toEqual({ v1: {}, unified: '/sys/fs/cgroup' });
    expect(chooseCgroupVersion(l)).toBe(2);
  });

  it('pure v1 with cpu,cpuacct co-mounted: both map to one path, the first mount wins', () => {
    const l = parseCgroupMounts(V1_COMOUNTED);
    expect(l.v1.cpu).toBe('/sys/fs/cgroup/cpu,cpuacct');
    expect(l.v1.cpuacct).toBe('/sys/fs/cgroup/cpu,cpuacct');
    expect(l.unified).toBeUndefined();
    expect(chooseCgroupVersion(l)).toBe(1);
    // One directory per distinct hierarchy, not per controller.
    const d = new CgroupV1Driver({ mounts: l.v1, parent: 'p' });
    expect(d.controllers().sort()).toEqual(['blkio', 'cpu', 'cpuacct', 'cpuset', 'freezer', 'memory', 'pids']);
  });

  it('decodes escaped mount points and reports no cgroups as none', () => {
    expect(parseCgroupMounts('1 0 0:1 / /a\\040b rw - cgroup2 cgroup2 rw').unified).toBe('/a b');
    expect(chooseCgroupVersion(parseCgroupMounts('1 0 0:1 / / rw - ext4 /dev/vda rw'))).toBeNull();
    // Only name=systemd in v1 (no controllers) and cgroup2: v2.
    expect(chooseCgroupVersion(parseCgroupMounts(`${PURE_V2}\n40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd`))).toBe(2);
  });

  it('detectCgroupDriver reads the given mountinfo and fails clearly without cgroups', () => {
    const dir = fs.mkdtempSync(join(tmpdir(), 'dockless-mountinfo-'));
    try {
      fs.writeFileSync(join(dir, 'v2'), PURE_V2);
      fs.writeFileSync(join(dir, 'none'), '1 0 0:1 / / rw - ext4 /dev/vda rw\n');
      expect(detectCgroupDriver({ mountinfo: join(dir, 'v2') }).version).toBe(2);
      expect(() => detectCgroupDriver({ mountinfo: join(dir, 'none') })).toThrow(UnsupportedError);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });
});

// ---------------------------------------------------------------------------
// Docker's notations

const HOST: HostCpuInfo = { cpus: 2, onlineCpus: '0-1', onlineMems: '0' };
const lim = (input: Parameters<typeof parseLimits>[0]) => parseLimits(input, { host: HOST });
function refused(input: Parameters<typeof parseLimits>[0], option: string, message?: RegExp): void {
  let err: unknown;
  try {
    lim(input);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(InvalidOptionError);
  expect((err as InvalidOptionError).option).toBe(option);
  if (message) expect((err as Error).message).toMatch(message);
}

describe('parseLimits (Docker notations)', () => {
  it('parses sizes as Docker does: binary units, optional i/b, decimals, numbers', () => {
    expect(parseByteSize('x', '64m')).toBe(64 * MiB);
    expect(parseByteSize('x', '1g')).toBe(1024 * MiB);
    expect(parseByteSize('x', '1.5g')).toBe(1536 * MiB);
    expect(parseByteSize('x', '512k')).toBe(512 * 1024);
    expect(parseByteSize('x', '1024b')).toBe(1024);
    expect(parseByteSize('x', '1024')).toBe(1024);
    expect(parseByteSize('x', '64MiB')).toBe(64 * MiB);
    expect(parseByteSize('x', '64 MB')).toBe(64 * MiB);
    expect(parseByteSize('x', 1 << 30)).toBe(1 << 30);
    expect(parseByteSize('x', '-1', true)).toBe(-1);
    for (const bad of ['lots', '-1', '64q', '1.2.3m', '', 'm']) expect(() => parseByteSize('x', bad)).toThrow(InvalidOptionError);
    expect(() => parseByteSize('x', 1.5)).toThrow(InvalidOptionError);
  });

  it('normalizes memory, swap and reservation, with Docker defaults and checks', () => {
    expect(lim({ memory: '64m' })).toEqual({ memory: 64 * MiB });
    expect(lim({ memory: '64m', memorySwap: '-1' })).toEqual({ memory: 64 * MiB, memorySwap: -1 });
    expect(lim({ memory: '64m', memorySwap: -1 })).toEqual({ memory: 64 * MiB, memorySwap: -1 });
    expect(lim({ memory: '64m', memorySwap: '128m', memoryReservation: '32m' })).toEqual({ memory: 64 * MiB, memorySwap: 128 * MiB, memoryReservation: 32 * MiB });
    expect(lim({ memory: 0, memorySwap: 0, memoryReservation: 0 })).toEqual({});
    expect(lim({ memory: '6m' })).toEqual({ memory: 6 * MiB });
    refused({ memory: '1k' }, 'limits.memory', /minimum memory limit allowed is 6MB/);
    refused({ memory: 'lots' }, 'limits.memory');
    refused({ memory: '64m', memorySwap: '32m' }, 'limits.memorySwap', /smaller than the memory limit/);
    refused({ memorySwap: '64m' }, 'limits.memorySwap', /set the memory limit/);
    refused({ memoryReservation: '1m' }, 'limits.memoryReservation');
    refused({ memory: '64m', memoryReservation: '128m' }, 'limits.memoryReservation');
  });

  it('turns cpus into a quota over a 100 ms period, bounded by the host CPUs', () => {
    expect(lim({ cpus: 1.5 })).toEqual({ cpuQuota: 150_000, cpuPeriod: 100_000 });
    expect(lim({ cpus: '0.5' })).toEqual({ cpuQuota: 50_000, cpuPeriod: 100_000 });
    expect(lim({ cpus: 0.1 + 0.2 })).toEqual({ cpuQuota: 30_000, cpuPeriod: 100_000 });
    expect(lim({ cpus: 2 })).toEqual({ cpuQuota: 200_000, cpuPeriod: 100_000 });
    expect(lim({ cpus: 0 })).toEqual({});
    refused({ cpus: 3 }, 'limits.cpus', /from 0\.01 to 2\.00, as there are only 2 CPUs available/);
    refused({ cpus: -1 }, 'limits.cpus');
    refused({ cpus: 512 }, 'limits.cpus');
    refused({ cpus: '0.001' }, 'limits.cpus');
    refused({ cpus: '0.0000000001' }, 'limits.cpus', /too precise/);
    refused({ cpus: 'two' }, 'limits.cpus');
    refused({ cpus: 1, cpuQuota: 50_000 }, 'limits.cpus', /conflicting/);
    refused({ cpus: 1, cpuPeriod: 50_000 }, 'limits.cpus', /conflicting/);
    // The host's own count is the default bound.
    expect(() => parseLimits({ cpus: hostCpuInfo().cpus + 1 })).toThrow(InvalidOptionError);
  });

  it('checks quota, period and shares as Docker does', () => {
    expect(lim({ cpuQuota: 50_000, cpuPeriod: 200_000 })).toEqual({ cpuQuota: 50_000, cpuPeriod: 200_000 });
    expect(lim({ cpuQuota: -1 })).toEqual({ cpuQuota: -1 });
    refused({ cpuQuota: 999 }, 'limits.cpuQuota');
    refused({ cpuPeriod: 999 }, 'limits.cpuPeriod');
    refused({ cpuPeriod: 1_000_001 }, 'limits.cpuPeriod');
    refused({ cpuQuota: 1.5 }, 'limits.cpuQuota');
    expect(lim({ cpuShares: 512 })).toEqual({ cpuShares: 512 });
    expect(lim({ cpuShares: 1 })).toEqual({ cpuShares: 2 });
    expect(lim({ cpuShares: 1_000_000 })).toEqual({ cpuShares: 262_144 });
    expect(lim({ cpuShares: 0 })).toEqual({});
  });

  it('validates cpuset lists against the host', () => {
    expect(lim({ cpusetCpus: '0-1', cpusetMems: '0' })).toEqual({ cpusetCpus: '0-1', cpusetMems: '0' });
    expect(lim({ cpusetCpus: '0,1' })).toEqual({ cpusetCpus: '0,1' });
    expect([...parseCpuList('x', '0-3,5')]).toEqual([0, 1, 2, 3, 5]);
    refused({ cpusetCpus: '0-999' }, 'limits.cpusetCpus', /not available on this host \(available: 0-1\)/);
    refused({ cpusetCpus: '2' }, 'limits.cpusetCpus');
    refused({ cpusetCpus: '1-0' }, 'limits.cpusetCpus', /invalid list/);
    refused({ cpusetCpus: '0,,1' }, 'limits.cpusetCpus', /invalid list/);
    refused({ cpusetCpus: 'a' }, 'limits.cpusetCpus');
    refused({ cpusetMems: '1' }, 'limits.cpusetMems');
  });

  it('pids: 0 or negative is unlimited; pids is short for pidsLimit', () => {
    expect(lim({ pidsLimit: 10 })).toEqual({ pidsLimit: 10 });
    expect(lim({ pids: 8 })).toEqual({ pidsLimit: 8 });
    expect(lim({ pidsLimit: 0 })).toEqual({ pidsLimit: -1 });
    expect(lim({ pidsLimit: -5 })).toEqual({ pidsLimit: -1 });
    refused({ pids: 1, pidsLimit: 2 }, 'limits.pids', /conflicting/);
    refused({ pidsLimit: 2.5 }, 'limits.pidsLimit');
  });

  it('blkio weight and device throttles', () => {
    expect(lim({ blkioWeight: 500 })).toEqual({ blkioWeight: 500 });
    expect(lim({ blkioWeight: 0 })).toEqual({});
    refused({ blkioWeight: 5 }, 'limits.blkioWeight', /from 10 to 1000/);
    refused({ blkioWeight: 1001 }, 'limits.blkioWeight');
    expect(lim({ deviceReadBps: [{ major: 8, minor: 0, rate: '1mb' }], deviceWriteIops: [{ major: 8, minor: 16, rate: 100 }] })).toEqual({
      deviceReadBps: [{ major: 8, minor: 0, rate: MiB }],
      deviceWriteIops: [{ major: 8, minor: 16, rate: 100 }],
    });
    const dev = fs.readdirSync('/sys/block')[0];
    if (dev && fs.existsSync(`/dev/${dev}`)) {
      const [major, minor] = read(`/sys/block/${dev}/dev`).split(':').map(Number);
      expect(lim({ deviceWriteBps: [`/dev/${dev}:2m`] })).toEqual({ deviceWriteBps: [{ major, minor, rate: 2 * MiB }] });
    }
    refused({ deviceReadBps: ['/dev/null:1m'] }, 'limits.deviceReadBps.0', /not a block device/);
    refused({ deviceReadBps: ['/etc/passwd:1m'] }, 'limits.deviceReadBps.0', /not a valid device/);
    refused({ deviceReadBps: ['/dev/does-not-exist:1m'] }, 'limits.deviceReadBps.0', /ENOENT/);
    refused({ deviceReadBps: ['/dev/null'] }, 'limits.deviceReadBps.0');
    refused({ deviceReadIops: [{ major: 8, minor: 0, rate: '1k' }] }, 'limits.deviceReadIops.0');
  });

  it('rejects unknown options and wrong types naming them', () => {
    refused({ memroy: '64m' } as never, 'limits.memroy', /unknown option/);
    refused({ pidsLimit: '10' } as never, 'limits.pidsLimit');
    expect(() => parseLimits({ memory: 'x' }, { prefix: 'update' })).toThrow(/invalid option update\.memory/);
  });
});

// ---------------------------------------------------------------------------
// What each driver writes

const V1_ALL: V1Features = { memsw: true, blkioWeightFile: 'blkio.bfq.weight' };
const V2_ALL: V2Features = { swap: true, ioWeightFile: 'io.weight' };
const files = (w: { file: string; value: string }[]): string[] => w.map((x) => `${x.file}=${x.value}`);

describe('v1 writes', () => {
  it('memory: swap defaults to memory (memsw twice it), memory written first on a fresh cgroup', () => {
    expect(files(v1LimitWrites({ memory: 64 * MiB }, V1_ALL))).toEqual([`memory.limit_in_bytes=${64 * MiB}`, `memory.memsw.limit_in_bytes=${128 * MiB}`]);
    expect(files(v1LimitWrites({ memory: 64 * MiB, memorySwap: -1 }, V1_ALL))).toEqual(['memory.memsw.limit_in_bytes=-1', `memory.limit_in_bytes=${64 * MiB}`]);
    expect(files(v1LimitWrites({ memory: 64 * MiB, memoryReservation: 32 * MiB }, { ...V1_ALL, memsw: false }))).toEqual([
      `memory.limit_in_bytes=${64 * MiB}`,
      `memory.soft_limit_in_bytes=${32 * MiB}`,
    ]);
  });

  it('memory update: memsw first when it grows past the current limit, else memory first', () => {
    const up = v1LimitWrites({ memory: 128 * MiB, memorySwap: 256 * MiB }, V1_ALL, () => 32 * MiB);
    expect(files(up)).toEqual([`memory.memsw.limit_in_bytes=${256 * MiB}`, `memory.limit_in_bytes=${128 * MiB}`]);
    const down = v1LimitWrites({ memory: 16 * MiB, memorySwap: 20 * MiB }, V1_ALL, () => 32 * MiB);
    expect(files(down)).toEqual([`memory.limit_in_bytes=${16 * MiB}`, `memory.memsw.limit_in_bytes=${20 * MiB}`]);
    // An update of memory alone does not invent a swap limit; lifting memory lifts swap.
    expect(files(v1LimitWrites({ memory: 16 * MiB }, V1_ALL, () => 32 * MiB))).toEqual([`memory.limit_in_bytes=${16 * MiB}`]);
    expect(files(v1LimitWrites({ memory: -1 }, V1_ALL, () => 32 * MiB))).toEqual(['memory.memsw.limit_in_bytes=-1', 'memory.limit_in_bytes=-1']);
  });

  it('without swap accounting: explicit swap is unsupported, unlimited swap is dropped', () => {
    const noSwap = { ...V1_ALL, memsw: false };
    expect(() => v1LimitWrites({ memory: 64 * MiB, memorySwap: 128 * MiB }, noSwap)).toThrow(UnsupportedError);
    expect(() => v1LimitWrites({ memory: 64 * MiB, memorySwap: 128 * MiB }, noSwap)).toThrow(/limits\.memorySwap .*swap accounting/);
    expect(files(v1LimitWrites({ memory: 64 * MiB, memorySwap: -1 }, noSwap))).toEqual([`memory.limit_in_bytes=${64 * MiB}`]);
  });

  it('cpu, cpuset, pids and blkio', () => {
    const w = v1LimitWrites(
      { cpuShares: 512, cpuPeriod: 50_000, cpuQuota: 25_000, cpusetCpus: '0', cpusetMems: '0', pidsLimit: -1, blkioWeight: 300, deviceReadBps: [{ major: 8, minor: 0, rate: 1024 }, { major: 8, minor: 16, rate: 0 }] },
      V1_ALL,
    );
    expect(w.map((x) => `${x.controller}/${x.file}=${x.value}`)).toEqual([
      'cpu/cpu.shares=512', 'cpu/cpu.cfs_period_us=50000', 'cpu/cpu.cfs_quota_us=25000', 'cpuset/cpuset.cpus=0', 'cpuset/cpuset.mems=0',
      'pids/pids.max=max', 'blkio/blkio.bfq.weight=300', 'blkio/blkio.throttle.read_bps_device=8:0 1024', 'blkio/blkio.throttle.read_bps_device=8:16 0',
    ]);
    expect(() => v1LimitWrites({ blkioWeight: 300 }, { ...V1_ALL, blkioWeightFile: null })).toThrow(/limits\.blkioWeight/);
    expect(v1LimitWrites({}, V1_ALL)).toEqual([]);
  });
});

describe('v2 parent setup (fake tree: this host cannot enable v2 controllers)', () => {
  it('enables at the root only what is missing there, and everything available in the parent', () => {
    const root = fs.mkdtempSync(join(tmpdir(), 'dockless-fake-cgroup2-'));
    try {
      fs.writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma\n');
      fs.writeFileSync(join(root, 'cgroup.subtree_control'), 'cpu memory\n');
      // What the kernel would create with the parent directory.
      fs.mkdirSync(join(root, 'dockless'));
      fs.writeFileSync(join(root, 'dockless', 'cgroup.subtree_control'), '');
      const d = new CgroupV2Driver({ mount: root });
      expect(d.controllers()).toEqual(['cpu', 'cpuset', 'io', 'memory', 'pids']);
      const cg = d.create('c1', {});
      expect(read(join(root, 'cgroup.subtree_control'))).toBe('+cpuset +io +pids');
      expect(read(join(root, 'dockless', 'cgroup.subtree_control'))).toBe('+cpu +cpuset +io +memory +pids');
      expect(fs.statSync(join(root, 'dockless', 'c1')).isDirectory()).toBe(true);
      expect(d.list()).toEqual(['c1']);
      expect(cg.pids()).toEqual([]);
      // Without swap accounting (no memory.swap.max in the parent), explicit swap is refused before anything is made.
      expect(() => d.create('c2', { memory: 64 * MiB, memorySwap: 128 * MiB })).toThrow(UnsupportedError);
      expect(fs.existsSync(join(root, 'dockless', 'c2'))).toBe(false);
    } finally {
      fs.rmSync(root, { recursive: true });
    }
  });
});

describe('v2 writes and conversions', () => {
  it('converts cpu shares to cpu.weight as runc and crun do', () => {
    expect(cpuSharesToWeight(2)).toBe(1);
    expect(cpuSharesToWeight(1024)).toBe(39);
    expect(cpuSharesToWeight(512)).toBe(20);
    expect(cpuSharesToWeight(262_144)).toBe(10_000);
    expect(blkioWeightToIoWeight(10)).toBe(1);
    expect(blkioWeightToIoWeight(500)).toBe(4950);
    expect(blkioWeightToIoWeight(1000)).toBe(10_000);
  });

  it('memory: swap.max is memorySwap minus memory, defaulting to memory; low is the reservation', () => {
    expect(files(v2LimitWrites({ memory: 64 * MiB }, V2_ALL))).toEqual([`memory.max=${64 * MiB}`, `memory.swap.max=${64 * MiB}`]);
    expect(files(v2LimitWrites({ memory: 64 * MiB, memorySwap: 64 * MiB }, V2_ALL))).toEqual([`memory.max=${64 * MiB}`, 'memory.swap.max=0']);
    expect(files(v2LimitWrites({ memory: 64 * MiB, memorySwap: -1, memoryReservation: 32 * MiB }, V2_ALL))).toEqual([
      `memory.max=${64 * MiB}`, 'memory.swap.max=max', `memory.low=${32 * MiB}`,
    ]);
    expect(files(v2LimitWrites({ memory: -1 }, V2_ALL, () => ''))).toEqual(['memory.max=max', 'memory.swap.max=max']);
    expect(files(v2LimitWrites({ memoryReservation: -1 }, V2_ALL))).toEqual(['memory.low=0']);
    // Swap alone on update comes on top of the memory limit in force.
    expect(files(v2LimitWrites({ memorySwap: 96 * MiB }, V2_ALL, (f) => (f === 'memory.max' ? String(64 * MiB) : '')))).toEqual([`memory.swap.max=${32 * MiB}`]);
    expect(() => v2LimitWrites({ memorySwap: 96 * MiB }, V2_ALL, () => 'max')).toThrow(InvalidOptionError);
    expect(() => v2LimitWrites({ memory: 64 * MiB, memorySwap: 128 * MiB }, { ...V2_ALL, swap: false })).toThrow(UnsupportedError);
    expect(files(v2LimitWrites({ memory: 64 * MiB }, { ...V2_ALL, swap: false }))).toEqual([`memory.max=${64 * MiB}`]);
  });

  it('cpu.max keeps the half that is not being changed', () => {
    expect(files(v2LimitWrites({ cpuQuota: 150_000, cpuPeriod: 100_000 }, V2_ALL))).toEqual(['cpu.max=150000 100000']);
    expect(files(v2LimitWrites({ cpuQuota: 50_000 }, V2_ALL))).toEqual(['cpu.max=50000']);
    expect(files(v2LimitWrites({ cpuPeriod: 50_000 }, V2_ALL))).toEqual(['cpu.max=max 50000']);
    expect(files(v2LimitWrites({ cpuPeriod: 50_000 }, V2_ALL, () => '20000 100000'))).toEqual(['cpu.max=20000 50000']);
    expect(files(v2LimitWrites({ cpuQuota: -1 }, V2_ALL, () => '20000 100000'))).toEqual(['cpu.max=max']);
    expect(files(v2LimitWrites({ cpuShares: 1024 }, V2_ALL))).toEqual(['cpu.weight=39']);
  });

  it('cpuset, pids, io weight and io.max (one line per device)', () => {
    const w = v2LimitWrites(
      {
        cpusetCpus: '0-1', cpusetMems: '0', pidsLimit: 10, blkioWeight: 500,
        deviceReadBps: [{ major: 8, minor: 0, rate: 1024 }], deviceWriteIops: [{ major: 8, minor: 0, rate: 0 }, { major: 8, minor: 16, rate: 5 }],
      },
      V2_ALL,
    );
    expect(w.map((x) => `${x.controller}/${x.file}=${x.value}`)).toEqual([
      'cpuset/cpuset.cpus=0-1', 'cpuset/cpuset.mems=0', 'pids/pids.max=10', 'io/io.weight=4950', 'io/io.max=8:0 rbps=1024 wiops=max', 'io/io.max=8:16 wiops=5',
    ]);
    expect(files(v2LimitWrites({ blkioWeight: 500 }, { ...V2_ALL, ioWeightFile: 'io.bfq.weight' }))).toEqual(['io.bfq.weight=500']);
    expect(files(v2LimitWrites({ pidsLimit: -1 }, V2_ALL))).toEqual(['pids.max=max']);
    expect(() => v2LimitWrites({ blkioWeight: 500 }, { ...V2_ALL, ioWeightFile: null })).toThrow(UnsupportedError);
  });
});
