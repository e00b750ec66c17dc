import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../src/errors.js';
import { parseUlimit, parseUlimits, RLIM_INFINITY, RLIMITS } from '../src/isolation/rlimits.js';

describe('rlimit table', () => {
  it('matches the kernel numbering (checked against prlimit(1) / <sys/resource.h> order)', () => {
    expect(RLIMITS).toMatchObject({ cpu: 0, fsize: 1, data: 2, stack: 3, core: 4, rss: 5, nproc: 6, nofile: 7, memlock: 8, as: 9, locks: 10, sigpending: 11, msgqueue: 12, nice: 13, rtprio: 14, rttime: 15 });
    // /proc/self/limits lists the resources in RLIMIT_* order.
    const r = spawnSync('cat', ['/proc/self/limits'], { encoding: 'utf8' });
    const rows = r.stdout.split('\n').slice(1).filter(Boolean);
    expect(rows).toHaveLength(16);
    expect(rows[7]).toMatch(/^Max open files/);
    expect(rows[9]).toMatch(/^Max address space/);
  });
});

describe('parseUlimit', () => {
  it("reads Docker's notation", () => {
    expect(parseUlimit('nofile=1024:2048')).toEqual({ resource: 7, soft: 1024, hard: 2048 });
    expect(parseUlimit('nproc=512')).toEqual({ resource: 6, soft: 512, hard: 512 });
    expect(parseUlimit('core=-1')).toEqual({ resource: 4, soft: RLIM_INFINITY, hard: RLIM_INFINITY });
    expect(parseUlimit('memlock=64:-1')).toEqual({ resource: 8, soft: 64, hard: -1 });
    expect(parseUlimit('stack=unlimited')).toEqual({ resource: 3, soft: -1, hard: -1 });
    expect(parseUlimit('NOFILE=1:2')).toEqual({ resource: 7, soft: 1, hard: 2 });
  });

  it('reads the object form', () => {
    expect(parseUlimit({ name: 'nofile', soft: 10, hard: 20 })).toEqual({ resource: 7, soft: 10, hard: 20 });
    expect(parseUlimit({ name: 'rtprio', soft: 5 })).toEqual({ resource: 14, soft: 5, hard: 5 });
    expect(parseUlimit({ name: 'as', soft: -1, hard: -1 })).toEqual({ resource: 9, soft: -1, hard: -1 });
  });

  it.each([
    ['nofile', /name=soft/],
    ['bogus=1', /bogus/],
    ['nofile=1:2:3', /too many/],
    ['nofile=abc', /invalid soft/],
    ['nofile=1:x', /invalid hard/],
    ['nofile=-2', /invalid soft/],
    ['nofile=1.5', /invalid soft/],
    ['nofile=2048:1024', /2048 > 1024/],
    ['nofile=-1:1024', /-1 > 1024/],
    ['nofile=', /invalid soft/],
  ])('rejects %s', (text, message) => {
    expect(() => parseUlimit(text)).toThrow(InvalidOptionError);
    expect(() => parseUlimit(text)).toThrow(message);
  });

  it('rejects bad objects and says which option', () => {
    expect(() => parseUlimit({ name: 'nofile', soft: 1e300 })).toThrow(InvalidOptionError);
    expect(() => parseUlimit({ name: 'nofile', soft: 3, hard: 2 })).toThrow(/3 > 2/);
    expect(() => parseUlimit(42 as never)).toThrow(InvalidOptionError);
    try {
      parseUlimits(['nofile=1', 'oops=1']);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidOptionError);
      expect((e as InvalidOptionError).option).toBe('ulimits');
    }
  });
});

describe('parseUlimits', () => {
  it('gives nothing by default: the container inherits, as with Docker', () => {
    expect(parseUlimits(undefined)).toEqual([]);
    expect(parseUlimits([])).toEqual([]);
  });

  it('lets a later value win and sorts by resource', () => {
    expect(parseUlimits(['nproc=10', 'nofile=1:2', { name: 'nproc', soft: 20, hard: 30 }])).toEqual([
      { resource: 6, soft: 20, hard: 30 },
      { resource: 7, soft: 1, hard: 2 },
    ]);
  });
});
