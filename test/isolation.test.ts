import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContainerOptions } from '../src/index.js';
import { openTestEngine, type TestEngine } from './helpers/engine.js';

let t: TestEngine;
beforeAll(async () => {
  t = await openTestEngine();
});
afterAll(async () => {
  await t?.cleanup();
});

/** Runs a shell script in a fresh container and returns its output and exit code. */
async function sh(script: string, extra: Partial<ContainerOptions> = {}): Promise<{ out: string; code: number }> {
  const c = await t.engine.run({ image: t.image, cmd: ['sh', '-c', script], wait: true, ...extra });
  try {
    const { exitCode } = await c.wait();
    return { out: await c.logs(), code: exitCode };
  } finally {
    await c.remove({ force: true });
  }
}

describe('isolation', () => {
  it('runs the command as PID 1 of its own PID namespace', async () => {
    const { out } = await sh('echo $$; ls /proc | grep -E "^[0-9]+$" | wc -l');
    const [pid1, count] = out.trim().split('\n');
    expect(pid1).toBe('1');
    // sh itself plus ls/grep/wc: a handful, never the host's hundreds.
    expect(Number(count)).toBeLessThan(8);
  });

  it('has its own hostname', async () => {
    const { out } = await sh('hostname', { hostname: 'inside' });
    expect(out.trim()).toBe('inside');
    expect(hostname()).not.toBe('inside');
  });

  it('defaults the hostname to the short id and writes /etc/hostname and /etc/hosts', async () => {
    const c = await t.engine.run({ image: t.image, cmd: ['sh', '-c', 'hostname; cat /etc/hostname; grep -c "$(hostname)" /etc/hosts'], wait: true });
    const [h, file, hosts] = (await c.logs()).trim().split('\n');
    expect(h).toBe(c.id.slice(0, 12));
    expect(file).toBe(h);
    expect(hosts).toBe('1');
    await c.remove();
  });

  it('does not see host mounts or processes', async () => {
    const { out } = await sh('cat /proc/mounts');
    // Only the container's own mounts: nothing the host has mounted (/work, /boot, /run...) shows through.
    const targets = out.trim().split('\n').map((line) => line.split(' ')[1]!);
    const own = /^\/(proc|dev|sys)(\/|$)|^\/etc\/(hostname|hosts|resolv\.conf)$|^\/$/;
    expect(targets.filter((t) => !own.test(t))).toEqual([]);
    expect(out).toMatch(/^\S+ \/ overlay /m);
    const hostProcs = readFileSync('/proc/1/cmdline', 'utf8');
    const { out: psOut } = await sh('cat /proc/1/cmdline');
    expect(psOut).not.toBe(hostProcs);
  });

  it('has only loopback in network mode none', async () => {
    const { out } = await sh('ls /sys/class/net; cat /proc/net/dev | tail -n +3 | cut -d: -f1');
    expect(out.split(/\s+/).filter(Boolean).sort()).toEqual(['lo', 'lo']);
    // ...and it is up, as under Docker: 127.0.0.1 answers.
    const { out: ping } = await sh('ip link show lo; ping -c1 -W1 127.0.0.1 >/dev/null && echo reachable');
    expect(ping).toMatch(/<LOOPBACK,UP/);
    expect(ping).toMatch(/reachable/);
  });

  it('refuses writes to /proc/sys and /sys', async () => {
    const { out } = await sh('echo 1 > /proc/sys/kernel/sysrq && echo procsys-writable; touch /sys/x 2>/dev/null && echo sys-writable; echo done');
    expect(out).not.toMatch(/writable/);
    expect(out).toMatch(/done/);
  });

  it('masks Docker\'s masked paths', async () => {
    // Files read empty (the host's are not); a directory is covered by an empty read-only
    // tmpfs, checked in the mount table because /proc/acpi may be empty on the host too.
    const { out } = await sh('wc -c < /proc/keys; wc -c < /proc/timer_list; grep -c "^tmpfs /proc/acpi tmpfs ro" /proc/mounts');
    expect(out.trim().split('\n')).toEqual(['0', '0', '1']);
  });

  it.each([
    ['mount', 'EPERM'],
    ['unshare', 'EPERM'],
    ['unshare-user', 'EPERM'],
    ['reboot', 'EPERM'],
    ['keyctl', 'EPERM'],
  ])('refuses %s as Docker does (%s)', async (what, errno) => {
    const { out, code } = await sh(`/bin/probe ${what}`);
    expect(out.trim()).toBe(errno);
    expect(code).toBe(1);
  });

  it('allows sethostname only with CAP_SYS_ADMIN (not in the default set)', async () => {
    expect((await sh('/bin/probe sethostname')).out.trim()).toBe('EPERM');
  });

  it('keeps exactly Docker\'s default capabilities and sets no_new_privs', async () => {
    const { out } = await sh('grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status');
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    expect(out).toMatch(/CapEff:\s+00000000a80425fb/);
    expect(out).toMatch(/CapBnd:\s+00000000a80425fb/);
    expect(out).toMatch(/NoNewPrivs:\s+1/);
    expect(out).toMatch(/Seccomp:\s+2/);
  });

  it('runs unconfined and with added capabilities when asked', async () => {
    const { out } = await sh('grep -E "^(CapEff|Seccomp):" /proc/self/status; /bin/probe sethostname', { seccomp: 'unconfined', capAdd: ['SYS_ADMIN'] });
    expect(out).toMatch(/Seccomp:\s+0/);
    expect(out).toMatch(/^ok$/m);
  });

  it('runs as the image user, with its groups and HOME', async () => {
    const { out } = await sh('id -u; id -g; echo $HOME', { user: 'nobody' });
    expect(out.trim().split('\n')).toEqual(['65534', '65534', '/nonexistent']);
  });

  it('applies rlimits', async () => {
    const { out } = await sh('ulimit -n; ulimit -Hn', { ulimits: ['nofile=123:456'] });
    expect(out.trim().split('\n')).toEqual(['123', '456']);
  });

  it('gives the container the standard /dev and nothing else from the host', async () => {
    const { out } = await sh('ls /dev | sort | tr "\\n" " "');
    expect(out.trim().split(' ').sort()).toEqual(
      ['core', 'fd', 'full', 'mqueue', 'null', 'ptmx', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', 'tty', 'urandom', 'zero'].sort(),
    );
  });

  it('keeps writes in the container layer, not in the image', async () => {
    await sh('echo changed > /etc/motd-test');
    const { out } = await sh('cat /etc/motd-test 2>/dev/null || echo absent');
    expect(out.trim()).toBe('absent');
  });
});
