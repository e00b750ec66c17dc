import { posix } from 'node:path';
import type { NativeCgroupPlacement, NativeProcess, NativeSpawnSpec, RootfsOp } from '../isolation/native-types.js';
import { defaultSeccompProgram, hostSeccompArch } from '../isolation/seccomp/index.js';
import type { ContainerConfig } from './config.js';
import type { ResolvedUser } from './user.js';

/**
 * execvpe's lookup, done ahead of time: the child may not allocate, so it gets
 * the list of absolute candidates and tries them in order.
 * @internal
 */
export function execCandidates(command: string, env: string[], cwd: string): string[] {
  if (command.includes('/')) return [posix.resolve(cwd, command)];
  const pathVar = env.find((e) => e.startsWith('PATH='))?.slice(5) ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  const dirs = pathVar.split(':').map((d) => (d === '' ? cwd : posix.resolve(cwd, d)));
  return [...new Set(dirs)].map((d) => posix.join(d, command));
}

/** The security tail every process of a container shares (first process and execs). @internal */
function securitySpec(config: ContainerConfig): Pick<NativeSpawnSpec, 'capabilities' | 'noNewPrivileges' | 'seccomp' | 'rlimits'> {
  return {
    capabilities: config.capabilities,
    noNewPrivileges: config.noNewPrivileges,
    rlimits: config.ulimits,
    ...(config.seccomp === 'default' ? { seccomp: defaultSeccompProgram(hostSeccompArch(), config.capabilities) } : {}),
  };
}

/** The spec of a container's first process. @internal */
export function initSpec(args: {
  config: ContainerConfig;
  user: ResolvedUser;
  env: string[];
  lowerDirs: string[];
  upper: string;
  work: string;
  target: string;
  ops: RootfsOp[];
  stdio: [number, number, number];
  cgroup: NativeCgroupPlacement;
}): NativeSpawnSpec {
  const { config, user } = args;
  const argv = [...config.entrypoint, ...config.cmd];
  return {
    mode: 'init',
    newNetwork: config.network !== 'host',
    // volatile: no syncfs of the host's filesystem each time a container's
    // mount namespace goes (milliseconds per exit). Safe here because an upper
    // dir never outlives a host crash: its container's owner is then dead and
    // the next Engine.open removes it.
    rootfs: { lower: args.lowerDirs, upper: args.upper, work: args.work, target: args.target, readonly: config.readonlyRootfs, volatile: true },
    ops: args.ops,
    hostname: config.hostname,
    execPaths: execCandidates(argv[0]!, args.env, config.workdir),
    argv,
    env: args.env,
    cwd: config.workdir,
    uid: user.uid,
    gid: user.gid,
    additionalGids: user.additionalGids,
    stdio: args.stdio,
    tty: config.tty,
    cgroup: args.cgroup,
    killWithParent: true,
    ...securitySpec(config),
  };
}

/** The spec of a process exec'd into a running container. @internal */
export function joinSpec(args: {
  config: ContainerConfig;
  target: NativeProcess;
  argv: string[];
  env: string[];
  cwd: string;
  user: ResolvedUser;
  tty: boolean;
  stdio: [number, number, number];
  cgroup: NativeCgroupPlacement;
}): NativeSpawnSpec {
  return {
    mode: 'join',
    join: args.target,
    execPaths: execCandidates(args.argv[0]!, args.env, args.cwd),
    argv: args.argv,
    env: args.env,
    cwd: args.cwd,
    uid: args.user.uid,
    gid: args.user.gid,
    additionalGids: args.user.additionalGids,
    stdio: args.stdio,
    tty: args.tty,
    cgroup: args.cgroup,
    killWithParent: true,
    ...securitySpec(args.config),
  };
}
