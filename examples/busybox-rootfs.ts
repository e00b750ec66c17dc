import { copyFileSync, existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/**
 * Builds a minimal root filesystem in `dir` from the host's static busybox
 * (Debian's busybox-static): /bin/busybox, a symlink per applet, and the /etc
 * files a container expects. This is the image the quickstart and the tests use,
 * made from what the machine has, with no registry.
 */
export function makeBusyboxRootfs(dir: string, busybox = '/bin/busybox'): string {
  if (!existsSync(busybox)) throw new Error(`${busybox} not found: install Debian's busybox-static`);
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'tmp', 'root', 'home', 'proc', 'sys', 'dev', 'var/tmp']) {
    mkdirSync(join(dir, d), { recursive: true });
  }
  copyFileSync(busybox, join(dir, 'bin/busybox'));
  execFileSync('chmod', ['1777', join(dir, 'tmp'), join(dir, 'var/tmp')]);
  execFileSync('chmod', ['0755', join(dir, 'bin/busybox')]);
  const applets = execFileSync(busybox, ['--list-full'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  for (const path of applets) {
    const link = join(dir, path);
    if (path === 'bin/busybox' || existsSync(link)) continue;
    mkdirSync(join(link, '..'), { recursive: true });
    symlinkSync('/bin/busybox', link);
  }
  writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  writeFileSync(join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  writeFileSync(join(dir, 'etc/os-release'), 'NAME="dockless busybox"\nID=busybox\n');
  return dir;
}
