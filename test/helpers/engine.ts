import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../src/index.js';
import { makeBusyboxRootfs } from '../../examples/busybox-rootfs.js';
import { testRootPrefix } from './leaks.js';
import { loopbackOnlyFetch } from '../fixtures/registry.js';

const here = fileURLToPath(new URL('.', import.meta.url));

/** A test's own engine on a fresh root, with a busybox image (plus a static syscall probe at /bin/probe). */
export interface TestEngine {
  engine: Engine;
  root: string;
  /** Reference of the busybox image: `busybox:latest`, CMD ["sh"]. */
  image: string;
  /** Closes the engine, removes every container it made and the root. */
  cleanup(): Promise<void>;
}

/** Builds the busybox+probe root filesystem in `dir`. */
export async function makeTestRootfs(dir: string): Promise<string> {
  makeBusyboxRootfs(dir);
  execFileSync('cc', ['-static', '-O2', '-o', join(dir, 'bin', 'probe'), join(here, '..', 'fixtures', 'probe.c')]);
  return dir;
}

/** Opens an engine on a new temporary root and imports the busybox image into it. */
export async function openTestEngine(): Promise<TestEngine> {
  const root = mkdtempSync(testRootPrefix());
  // Tests never reach beyond loopback: an image a test does not have locally is
  // not fetched from Docker Hub (the pull fails with RegistryUnavailableError).
  const engine = await Engine.open({ root, registry: { fetch: loopbackOnlyFetch(), dockerConfigPath: false } });
  try {
    const rootfs = await makeTestRootfs(join(root, 'busybox-rootfs'));
    await engine.images.import(rootfs, { ref: 'busybox:latest', changes: ['CMD ["sh"]'] });
    rmSync(rootfs, { recursive: true, force: true });
  } catch (err) {
    await engine.close();
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return {
    engine,
    root,
    image: 'busybox:latest',
    async cleanup() {
      for (const c of engine.listContainers({ all: true })) await c.remove({ force: true }).catch(() => undefined);
      await engine.close();
      if (existsSync(root)) rmSync(root, { recursive: true, force: true });
    },
  };
}
