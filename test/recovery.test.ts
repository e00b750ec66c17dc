import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../src/index.js';
import { openTestEngine, type TestEngine } from './helpers/engine.js';

const child = fileURLToPath(new URL('./fixtures/owner-child.ts', import.meta.url));

let t: TestEngine;
beforeAll(async () => {
  t = await openTestEngine();
});
afterAll(async () => {
  await t?.cleanup();
});

function startChild(args: string[]) {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, t.root, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const firstLine = new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`child exited with ${code} before reporting`)));
  });
  return { proc, firstLine };
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(safeStatus(pid));
function safeStatus(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}

async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return cond();
}

describe('crash recovery', () => {
  it('a SIGKILLed owner takes its containers with it; the next open removes the rest', async () => {
    const { proc, firstLine } = startChild(['run']);
    let info: { id: string; pid: number };
    try {
      info = JSON.parse(await firstLine);
    } catch (err) {
      proc.kill('SIGKILL');
      throw err;
    }
    const cgroupName = info.id;
    expect(alive(info.pid)).toBe(true);
    // Another engine sees the child's container running.
    expect(t.engine.getContainer('owned-by-child').state.status).toBe('running');

    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));
    // PDEATHSIG kills PID 1; the PID namespace takes its children with it.
    expect(await until(() => !alive(info.pid))).toBe(true);

    const again = await Engine.open({ root: t.root });
    try {
      expect(existsSync(join(t.root, 'containers', info.id))).toBe(false);
      expect(existsSync(join(t.root, 'names', 'owned-by-child'))).toBe(false);
      const cgroupLeft = readdirSync('/sys/fs/cgroup').some((ctrl) => existsSync(join('/sys/fs/cgroup', ctrl, 'dockless', cgroupName)));
      expect(cgroupLeft).toBe(false);
      const mounts = readFileSync('/proc/mounts', 'utf8');
      expect(mounts).not.toContain(info.id);
    } finally {
      await again.close();
    }
  });

  it('two processes on one root never hand out the same name', async () => {
    const a = startChild(['names', '15']);
    const b = startChild(['names', '15']);
    const [ra, rb] = await Promise.all([a.firstLine, b.firstLine]);
    const wonA: string[] = JSON.parse(ra).won;
    const wonB: string[] = JSON.parse(rb).won;
    expect(wonA.filter((n) => wonB.includes(n))).toEqual([]);
    expect([...wonA, ...wonB].sort()).toEqual(Array.from({ length: 15 }, (_, i) => `race-${i}`).sort());
    // Both children closed cleanly: their created containers stay, ownerless, and this engine can remove them.
    for (const n of [...wonA, ...wonB]) await t.engine.getContainer(n).remove();
  });
});
