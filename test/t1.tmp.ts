import { openTestEngine } from './helpers/engine.js';
const t = await openTestEngine();
const e = t.engine;
for (const cmd of ['cat /proc/mounts', 'wc -c < /proc/kcore; ls -la /proc/acpi; echo x']) {
  const c = await e.run({ image: 'busybox', cmd: ['sh', '-c', cmd] , wait: true} as any);
  console.log(await c.wait(), await c.logs());
  await c.remove({force:true});
}
await t.cleanup();
