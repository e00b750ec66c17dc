/**
 * A service container as an integration test would use one: busybox's httpd
 * serving a file from a bind mount, on the host's network, with `run`
 * resolving only once the port is listening. Works offline.
 *
 *   npx tsx examples/http-server.ts
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, Wait } from '../src/index.js';
import { makeBusyboxRootfs } from './busybox-rootfs.js';

const port = 18080;
const work = mkdtempSync('/tmp/dockless-http-');
try {
  await using engine = await Engine.open({ root: process.env.DOCKLESS_ROOT ?? '/var/lib/dockless' });
  if (!engine.images.list().some((i) => i.repoTags.includes('quickstart/busybox:latest'))) {
    await engine.images.import(makeBusyboxRootfs(join(work, 'rootfs')), { ref: 'quickstart/busybox:latest', changes: ['CMD ["sh"]'] });
  }
  writeFileSync(join(work, 'index.html'), 'hello from a dockless container\n');

  // `await using`: the container is removed when this block ends, even on error.
  await using web = await engine.run({
    image: 'quickstart/busybox',
    cmd: ['httpd', '-f', '-v', '-p', String(port), '-h', '/www'],
    network: 'host',
    volumes: [`${work}:/www:ro`],
    waitStrategy: Wait.forListeningPorts(port).withStartupTimeout(5_000),
  });
  const res = await fetch(`http://127.0.0.1:${port}/index.html`);
  console.log(`GET / -> ${res.status}: ${(await res.text()).trim()}`);
  console.log(`server log: ${(await web.logs()).trim().split('\n').at(-1)}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
