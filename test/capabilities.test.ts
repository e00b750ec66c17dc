import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../src/errors.js';
import {
  CAPABILITIES,
  capabilityName,
  capabilityNumber,
  DEFAULT_CAPABILITIES,
  lastCapability,
  resolveCapabilities,
} from '../src/isolation/capabilities.js';

const n = (...names: (keyof typeof CAPABILITIES)[]) => names.map((x) => CAPABILITIES[x]).sort((a, b) => a - b);
const DEFAULTS = n(...DEFAULT_CAPABILITIES);

describe('capability table', () => {
  it('matches <linux/capability.h>', () => {
    const header = readFileSync('/usr/include/linux/capability.h', 'utf8');
    const defined = [...header.matchAll(/^#define (CAP_[A-Z_]+)\s+(\d+)\s*$/gm)].map(([, name, nr]) => [name, Number(nr)] as const);
    expect(defined.length).toBeGreaterThanOrEqual(41);
    for (const [name, nr] of defined) expect(CAPABILITIES[name as keyof typeof CAPABILITIES], name).toBe(nr);
    expect(Object.keys(CAPABILITIES)).toHaveLength(41);
    expect(CAPABILITIES.CAP_CHECKPOINT_RESTORE).toBe(40);
  });

  it('looks names up Docker-style', () => {
    expect(capabilityNumber('net_admin')).toBe(12);
    expect(capabilityNumber('CAP_NET_ADMIN')).toBe(12);
    expect(capabilityNumber('Sys_Admin')).toBe(21);
    expect(capabilityNumber('constructor')).toBeUndefined();
    expect(capabilityNumber('NOPE')).toBeUndefined();
    expect(capabilityName(21)).toBe('CAP_SYS_ADMIN');
    expect(capabilityName(99)).toBeUndefined();
  });

  it('reads the kernel last capability', () => {
    const kernel = Number(readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8'));
    expect(lastCapability()).toBe(Math.min(kernel, 40));
  });
});

describe('resolveCapabilities', () => {
  it("gives Docker's 14 by default", () => {
    expect(DEFAULT_CAPABILITIES).toHaveLength(14);
    expect(resolveCapabilities()).toEqual(DEFAULTS);
    expect(resolveCapabilities({ add: [], drop: [] })).toEqual(DEFAULTS);
    expect(resolveCapabilities()).toEqual([0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31]);
  });

  it('adds and drops, with or without the CAP_ prefix, in any case', () => {
    const caps = resolveCapabilities({ add: ['net_admin', 'CAP_SYS_PTRACE'], drop: ['Mknod', 'CAP_NET_RAW'] });
    expect(caps).toContain(CAPABILITIES.CAP_NET_ADMIN);
    expect(caps).toContain(CAPABILITIES.CAP_SYS_PTRACE);
    expect(caps).not.toContain(CAPABILITIES.CAP_MKNOD);
    expect(caps).not.toContain(CAPABILITIES.CAP_NET_RAW);
    expect(caps).toHaveLength(14);
    expect(resolveCapabilities({ add: ['CHOWN', 'chown'] })).toEqual(DEFAULTS); // no duplicates
  });

  it('handles ALL like Docker', () => {
    const all = Array.from({ length: lastCapability() + 1 }, (_, i) => i);
    expect(resolveCapabilities({ add: ['ALL'] })).toEqual(all);
    expect(resolveCapabilities({ add: ['all'], drop: ['SYS_ADMIN'] })).toEqual(all.filter((c) => c !== 21));
    expect(resolveCapabilities({ drop: ['ALL'] })).toEqual([]);
    expect(resolveCapabilities({ drop: ['ALL'], add: ['NET_BIND_SERVICE', 'chown'] })).toEqual([0, 10]);
    expect(resolveCapabilities({ add: ['ALL'], drop: ['ALL'] })).toEqual(all); // add ALL wins, as in Docker
    expect(resolveCapabilities({ privileged: true, drop: ['ALL'] })).toEqual(all);
  });

  it('names the unknown capability and the option', () => {
    const err = (() => {
      try {
        resolveCapabilities({ add: ['NET_ADMIN', 'CAP_FLY'] });
      } catch (e) {
        return e;
      }
    })() as InvalidOptionError;
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect(err.option).toBe('capAdd');
    expect(err.message).toContain('CAP_FLY');
    expect(() => resolveCapabilities({ drop: ['teleport'] })).toThrow(/teleport/);
    try {
      resolveCapabilities({ drop: ['teleport'] });
    } catch (e) {
      expect((e as InvalidOptionError).option).toBe('capDrop');
    }
  });
});
