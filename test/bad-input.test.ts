import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CommandNotFoundError,
  ContainerStartError,
  ImageNotFoundError,
  InvalidOptionError,
  NameConflictError,
  UnsupportedError,
} from '../src/index.js';
import { findLeaks } from './helpers/leaks.js';
import { openTestEngine, type TestEngine } from './helpers/engine.js';

let t: TestEngine;
beforeAll(async () => {
  t = await openTestEngine();
});
afterAll(async () => {
  await t?.cleanup();
});

/** Nothing of a failed create/run may remain: no record, no name, no cgroup, no process. */
function expectNothingLeft(): void {
  expect(readdirSync(join(t.root, 'containers'))).toEqual([]);
  expect(readdirSync(join(t.root, 'names'))).toEqual([]);
  expect(findLeaks()).toEqual([]);
}

describe('bad input', () => {
  it('unknown image', async () => {
    // pull: 'never', or the default ('missing') would ask Docker Hub for it (see pull.test.ts).
    await expect(t.engine.run({ image: 'nope:1', cmd: ['true'], pull: 'never' })).rejects.toBeInstanceOf(ImageNotFoundError);
    expectNothingLeft();
  });

  it('command not found: typed error with Docker\'s 127, nothing left', async () => {
    const err = await t.engine.run({ image: t.image, cmd: ['/no/such/binary'] }).catch((e) => e);
    expect(err).toBeInstanceOf(CommandNotFoundError);
    expect(err).toBeInstanceOf(ContainerStartError);
    expect(err).toMatchObject({ step: 'execve', errnoName: 'ENOENT', exitCode: 127 });
    const err2 = await t.engine.run({ image: t.image, cmd: ['nosuchcmd'] }).catch((e) => e);
    expect(err2).toBeInstanceOf(CommandNotFoundError);
    expect((err2 as Error).message).toMatch(/nosuchcmd: executable file not found in \$PATH/);
    expectNothingLeft();
  });

  it('a file that is not executable: exit 126', async () => {
    const err = await t.engine.run({ image: t.image, cmd: ['/etc/passwd'] }).catch((e) => e);
    expect(err).toBeInstanceOf(ContainerStartError);
    expect(err).toMatchObject({ step: 'execve', errnoName: 'EACCES', exitCode: 126 });
    expectNothingLeft();
  });

  it('a start failure on create+start leaves the container created with the error', async () => {
    const c = await t.engine.create({ image: t.image, cmd: ['nosuchcmd'] });
    await expect(c.start()).rejects.toBeInstanceOf(CommandNotFoundError);
    expect(c.inspect().State).toMatchObject({ Status: 'created', ExitCode: 127, Running: false });
    expect(c.inspect().State.Error).toMatch(/not found/);
    await c.remove();
    expectNothingLeft();
  });

  it('unknown option', async () => {
    const err = await t.engine.run({ image: t.image, cmd: ['true'], memroy: '1g' } as never).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as InvalidOptionError).option).toBe('memroy');
    expectNothingLeft();
  });

  it.each([
    [{ cmd: 'true' }, 'cmd'],
    [{ name: 'bad name!' }, 'name'],
    [{ workdir: 'relative' }, 'workdir'],
    [{ hostname: '-bad-' }, 'hostname'],
    [{ user: 'nosuchuser' }, 'user'],
    [{ capAdd: ['NOT_A_CAP'] }, 'capAdd'],
    [{ ulimits: ['nofile=abc'] }, 'ulimits'],
    [{ volumes: ['relative:x'] }, 'volumes.0'],
    [{ volumes: ['/does/not/exist:/x'] }, 'volumes.0'],
    [{ stopSignal: 'SIGNOPE' }, 'stopSignal'],
    [{ cmd: [], entrypoint: [] }, 'cmd'],
  ])('invalid option %j names %s', async (bad, option) => {
    const err = await t.engine.run({ image: t.image, cmd: ['true'], ...bad } as never).catch((e) => e);
    expect(err).toBeInstanceOf(InvalidOptionError);
    expect((err as InvalidOptionError).option).toBe(option);
    expectNothingLeft();
  });

  it('name clash', async () => {
    const a = await t.engine.create({ image: t.image, cmd: ['true'], name: 'taken' });
    const err = await t.engine.create({ image: t.image, cmd: ['true'], name: 'taken' }).catch((e) => e);
    expect(err).toBeInstanceOf(NameConflictError);
    expect((err as Error).message).toContain(a.id);
    await a.remove();
    expectNothingLeft();
  });

  it('ports without a bridge network are refused up front', async () => {
    await expect(t.engine.run({ image: t.image, cmd: ['true'], ports: [8080] })).rejects.toBeInstanceOf(UnsupportedError);
    expectNothingLeft();
  });

  it('a retry after a failure succeeds', async () => {
    await t.engine.run({ image: t.image, cmd: ['nosuchcmd'], name: 'retry' }).catch(() => undefined);
    const c = await t.engine.run({ image: t.image, cmd: ['true'], name: 'retry', wait: true });
    expect((await c.wait()).exitCode).toBe(0);
    await c.remove();
    expect(existsSync(join(t.root, 'names', 'retry'))).toBe(false);
  });
});
