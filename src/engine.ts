import { existsSync, mkdirSync, readdirSync, readlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { EventEmitter } from 'eventemitter3';
import createDebug from 'debug';
import { ContainerNotFoundError, DocklessError, InvalidOptionError, NameConflictError, UnsupportedError } from './errors.js';
import { parseOptions } from './validate.js';
import { containerOptionsSchema, type ContainerOptions } from './container/options.js';
import { mergeCommand, mergeEnv, parseMount, rejectUnsupported, stopSignalOf, type ContainerConfig } from './container/config.js';
import { Container, prepareContainerDir, type EngineContext } from './container/container.js';
import type { EngineEvents } from './container/events.js';
import { isValidName, newContainerId, normalizeName, randomName } from './container/names.js';
import { resolveUser } from './container/user.js';
import { ContainerNotReadyError } from './container/wait.js';
import { detectCgroupDriver, parseLimits, type CgroupDriver } from './isolation/cgroup/index.js';
import { resolveCapabilities } from './isolation/capabilities.js';
import { parseUlimits } from './isolation/rlimits.js';
import { native } from './isolation/native.js';
import { Images } from './image/images.js';
import { registryOptionsSchema } from './image/pull-options.js';
import { RegistryClient, type RegistryClientOptions } from './image/registry/client.js';
import { FileLock } from './state/lock.js';
import { OwnerToken, ownerAlive, pruneOwners } from './state/owner.js';
import { RecordStore } from './state/records.js';
import { Volumes } from './volume/volumes.js';

const debug = createDebug('dockless:engine');

/** Options for {@link Engine.open}. */
export interface EngineOptions {
  /** Where images, containers and volumes live; default `/var/lib/dockless`. */
  root?: string;
  /**
   * Name of the cgroup under which container cgroups are made; default the
   * `DOCKLESS_CGROUP_PARENT` environment variable, else `dockless`.
   */
  cgroupParent?: string;
  /**
   * How registries are reached for pulls: insecure (plain HTTP) registries,
   * Docker Hub mirrors, credentials. By default credentials come from Docker's
   * config file (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`), and
   * loopback registries may be spoken to over plain HTTP.
   */
  registry?: RegistryClientOptions;
}

/** Filters for {@link Engine.listContainers}. */
export interface ListOptions {
  /** Include containers that are not running (`docker ps -a`). */
  all?: boolean;
  /** Only containers carrying all these labels (a value of `undefined` matches any value). */
  labels?: Record<string, string | undefined>;
}

/**
 * The entry point: an engine owns a state root and runs containers from this
 * process. There is no daemon; containers live as long as the process that
 * started them, and an engine opened later cleans up after one that crashed.
 *
 * ```ts
 * await using engine = await Engine.open();
 * const c = await engine.run({ image: 'busybox', cmd: ['echo', 'hi'], wait: true });
 * console.log(await c.logs());
 * ```
 */
export class Engine implements AsyncDisposable {
  /** The state root. */
  readonly root: string;
  /** Local images: import, list, inspect, tag, remove. */
  readonly images: Images;
  /** Named volumes. */
  readonly volumes: Volumes;
  /** Lifecycle events of containers (`create`, `start`, `die`, `oom`, `destroy`, …, and `event` for all). */
  readonly events = new EventEmitter<EngineEvents>();
  /** The cgroup driver chosen for this host (v1 or v2). */
  readonly cgroups: CgroupDriver;

  private readonly records: RecordStore;
  private readonly lock: FileLock;
  private readonly owner: OwnerToken;
  private readonly ownersDir: string;
  private readonly live = new Map<string, Container>();
  private readonly ctx: EngineContext;
  private closed = false;

  private constructor(root: string, options: EngineOptions) {
    this.root = root;
    this.lock = new FileLock(join(root, 'lock'));
    this.ownersDir = join(root, 'owners');
    this.owner = new OwnerToken(this.ownersDir);
    this.records = new RecordStore(root);
    this.cgroups = detectCgroupDriver({ parent: options.cgroupParent ?? process.env.DOCKLESS_CGROUP_PARENT ?? 'dockless' });
    this.images = new Images(root, this.lock, (imageId) => this.containersUsingImage(imageId), new RegistryClient(options.registry));
    this.volumes = new Volumes(root, (name) => this.containersUsingVolume(name));
    const self = this;
    this.ctx = {
      root,
      records: this.records,
      cgroups: this.cgroups,
      ownerId: this.owner.id,
      events: this.events,
      layerDirs: (imageId) => self.images.layerDirs(imageId),
      volumePath: (name) => self.volumes.path(name),
      ownerAlive: (id) => id === self.owner.id || ownerAlive(self.ownersDir, id),
      forget: (id) => self.live.delete(id),
    };
  }

  /**
   * Opens (creating if needed) the state root, and cleans up after engines that
   * died without closing: their containers' processes, cgroups, mounts and records.
   */
  static async open(options: EngineOptions = {}): Promise<Engine> {
    if (process.platform !== 'linux') throw new UnsupportedError('dockless runs Linux containers and needs a Linux host');
    if (process.getuid?.() !== 0) throw new UnsupportedError('dockless needs root for now (rootless mode is planned)');
    const root = options.root ?? '/var/lib/dockless';
    if (typeof root !== 'string' || !root.startsWith('/')) throw new InvalidOptionError('root', 'must be an absolute path');
    if (options.registry !== undefined) parseOptions(registryOptionsSchema, options.registry, 'registry');
    mkdirSync(root, { recursive: true, mode: 0o711 });
    const engine = new Engine(root, options);
    await engine.lock.run(() => engine.recover());
    return engine;
  }

  /** Removes what dead engines left: runs under the root lock. */
  private recover(): void {
    for (const id of this.records.ids()) {
      const state = this.records.readState(id);
      const config = this.records.readConfig(id);
      // An owner id means an engine held it; a dead one means that engine crashed.
      if (state && (!state.ownerId || ownerAlive(this.ownersDir, state.ownerId))) continue;
      debug('recovering container %s left by a dead engine', id);
      const cg = this.cgroups.open(id);
      cg?.killAll();
      cg?.destroy();
      native.unmount(join(this.records.dir(id), 'rootfs'));
      this.records.remove(id, config?.name ?? '');
    }
    for (const name of readdirSync(this.records.namesDir)) {
      const path = join(this.records.namesDir, name);
      let target: string;
      try {
        target = readlinkSync(path);
      } catch {
        continue;
      }
      if (!existsSync(this.records.dir(target))) unlinkSync(path);
    }
    pruneOwners(this.ownersDir);
    this.records.emptyTrash();
  }

  private ensureOpen(): void {
    if (this.closed) throw new DocklessError('the engine is closed', 'ERR_ENGINE_CLOSED');
  }

  /**
   * Creates a container (`docker create`): validates every option, resolves the
   * image, merges its config by Docker's rules and writes the container's record.
   * A bad option throws {@link InvalidOptionError} naming it, and nothing is made.
   */
  async create(options: ContainerOptions): Promise<Container> {
    this.ensureOpen();
    const o = parseOptions(containerOptionsSchema, options);
    rejectUnsupported(o);
    const limits = parseLimits(o.limits ?? {});
    const capabilities = resolveCapabilities({ add: o.capAdd ?? [], drop: o.capDrop ?? [] });
    const ulimits = parseUlimits(o.ulimits ?? []);
    const mounts = (o.volumes ?? []).map((m, i) => parseMount(m, i));
    mounts.forEach((m, i) => {
      if (m.type === 'bind' && !existsSync(m.source)) throw new InvalidOptionError(`volumes.${i}`, `bind source ${m.source} does not exist`);
    });
    const image = await this.images.forContainer(o.image, o.pull ?? 'missing', o.signal);
    const imageConfig = this.images.runtimeConfig(image.id);
    const { entrypoint, cmd } = mergeCommand(imageConfig, o.entrypoint, o.cmd);
    const workdir = o.workdir ?? (imageConfig.WorkingDir || '/');
    if (!workdir.startsWith('/')) throw new InvalidOptionError('workdir', 'the image WorkingDir must be absolute');
    const user = o.user ?? imageConfig.User ?? '';
    resolveUser(user, this.images.layerDirs(image.id)); // fail now, not at start
    const stopSignal = stopSignalOf(o.stopSignal, imageConfig);
    let name: string | undefined;
    if (o.name !== undefined) {
      if (!isValidName(o.name)) throw new InvalidOptionError('name', `invalid container name ${JSON.stringify(o.name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
      name = normalizeName(o.name);
    }

    const id = newContainerId();
    const hostname = o.hostname ?? id.slice(0, 12);
    const config: ContainerConfig = {
      id,
      name: name ?? '', // a random one is drawn under the lock below
      created: new Date().toISOString(),
      image: o.image,
      imageId: image.id,
      entrypoint,
      cmd,
      env: mergeEnv(imageConfig.Env ?? [], o.env, hostname),
      workdir,
      user,
      hostname,
      labels: { ...(imageConfig.Labels ?? {}), ...(o.labels ?? {}) },
      tty: o.tty ?? false,
      openStdin: o.openStdin ?? false,
      autoRemove: o.autoRemove ?? false,
      limits,
      ulimits,
      capabilities,
      seccomp: o.seccomp ?? 'default',
      noNewPrivileges: o.noNewPrivileges ?? true,
      readonlyRootfs: o.readonlyRootfs ?? false,
      network: o.network ?? 'none',
      mounts,
      stopSignal,
      stopTimeout: o.stopTimeout ?? 10,
    };
    // Under the root lock: another engine's recovery (which removes records
    // without a live owner, and dangling names) must never see a half-made one.
    await this.lock.run(() => {
      if (o.name !== undefined) {
        const holder = this.records.claimName(config.name, id);
        if (holder) throw new NameConflictError(config.name, holder);
      } else {
        for (let attempt = 0; ; attempt++) {
          config.name = randomName(attempt);
          if (!this.records.claimName(config.name, id)) break;
        }
      }
      try {
        prepareContainerDir(this.records.dir(id), hostname, config.network);
        this.records.writeConfig(config);
        this.records.writeState(id, { status: 'created', ownerId: this.owner.id, restartCount: 0 });
      } catch (err) {
        this.records.remove(id, config.name);
        throw err;
      }
    });
    const container = new Container(this.ctx, config);
    this.live.set(id, container);
    this.events.emit('create', { action: 'create', id, name: config.name, image: config.image, time: new Date(), attributes: {} });
    this.events.emit('event', { action: 'create', id, name: config.name, image: config.image, time: new Date(), attributes: {} });
    return container;
  }

  /**
   * Creates and starts a container (`docker run -d`), then waits for its wait
   * strategy, if any; with `wait: true` it resolves once the container has exited
   * (`docker run` in the foreground). If starting fails the container is removed
   * again, so a failed `run` leaves nothing behind.
   */
  async run(options: ContainerOptions): Promise<Container> {
    const container = await this.create(options);
    const signal = options.signal;
    try {
      signal?.throwIfAborted();
      await container.start();
      if (options.waitStrategy) {
        const strategy = options.waitStrategy;
        const timeout = AbortSignal.timeout(strategy.startupTimeoutMs ?? 60_000);
        const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
        await strategy.waitUntilReady(container, both).catch((err) => {
          if (timeout.aborted && !signal?.aborted) {
            throw new ContainerNotReadyError(`container ${container.name} was not ready within ${strategy.startupTimeoutMs ?? 60_000} ms`);
          }
          throw err;
        });
      }
      if (options.wait) await container.wait(signal ? { signal } : {});
    } catch (err) {
      await container.remove({ force: true }).catch(() => undefined);
      throw err;
    }
    return container;
  }

  /** The container with this name, id or unique id prefix; throws {@link ContainerNotFoundError}. */
  getContainer(nameOrId: string): Container {
    this.ensureOpen();
    const id = this.records.resolve(nameOrId);
    const known = id ? this.live.get(id) : undefined;
    if (known) return known;
    const config = id ? this.records.readConfig(id) : undefined;
    if (!config) throw new ContainerNotFoundError(nameOrId);
    const container = new Container(this.ctx, config);
    this.live.set(config.id, container);
    return container;
  }

  /** Containers on this root, running ones only unless `all` (`docker ps [-a]`). */
  listContainers(options: ListOptions = {}): Container[] {
    this.ensureOpen();
    const out: Container[] = [];
    for (const id of this.records.ids()) {
      let c: Container;
      try {
        c = this.getContainer(id);
      } catch {
        continue; // removed meanwhile by another process
      }
      if (!options.all && c.state.status !== 'running') continue;
      const labels = c.config.labels;
      if (options.labels && !Object.entries(options.labels).every(([k, v]) => k in labels && (v === undefined || labels[k] === v))) continue;
      out.push(c);
    }
    return out.sort((a, b) => b.config.created.localeCompare(a.config.created));
  }

  private containersUsingImage(imageId: string): string[] {
    return this.records.ids().flatMap((id) => {
      const c = this.records.readConfig(id);
      return c?.imageId === imageId ? [c.name] : [];
    });
  }

  private containersUsingVolume(name: string): string[] {
    return this.records.ids().flatMap((id) => {
      const c = this.records.readConfig(id);
      return c?.mounts.some((m) => m.type === 'volume' && m.source === name) ? [c.name] : [];
    });
  }

  /**
   * Kills the containers this engine runs (they would die with the process
   * anyway), waits until they are cleaned up, and releases the root. Containers
   * stay listed as exited for a later engine; those with `autoRemove` are removed.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    const exits = [...this.live.values()].map((c) => c.killNow()).filter((p) => p !== undefined);
    await Promise.allSettled(exits);
    await this.lock.run(() => {
      for (const id of this.records.ids()) {
        const s = this.records.readState(id);
        if (s?.ownerId === this.owner.id) this.records.writeState(id, { ...s, ownerId: '' });
      }
    });
    await this.records.drained();
    this.closed = true;
    this.owner.release();
    this.cgroups.removeParentIfEmpty();
    this.lock.close();
  }

  /** Same as {@link close}, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
