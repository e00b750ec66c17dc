import { openTestEngine } from './helpers/engine.js';
const t = await openTestEngine();
const e = t.engine;
try {
  const c = await e.run({ image: 'busybox', cmd: ['sleep', '30'] });
  const r2 = await c.exec(['sh', '-c', 'ls -l /proc/self/fd/; cat; echo "$X"'], { stdin: 'in-', env: { X: 'y' } });
  console.log(r2);
  const r3 = await c.exec(['sh', '-c', 'ls -ld / /bin /bin/cat /bin/busybox; cat; echo $(id -u)'], { stdin: 'hello', user: 'nobody', workdir: '/tmp' });
  console.log(r3);
} catch (err) { console.log('err', err); }
await t.cleanup();
