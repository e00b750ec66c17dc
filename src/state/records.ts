import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerConfig } from '../container/config.js';

/** Docker's container states. */
export type ContainerStatus = 'created' | 'running' | 'exited' | 'dead' | 'removing';

/** The mutable part of a container's record. @internal */
export interface ContainerState {
  status: ContainerStatus;
  /** Engine that runs (or last created) it; see {@link OwnerToken}. */
  ownerId: string;
  pid?: number;
  /** The process's start time (field 22 of /proc/PID/stat), so a reused pid is never signalled. */
  pidStart?: string;
  exitCode?: number;
  oomKilled?: boolean;
  error?: string;
  startedAt?: string;
  finishedAt?: string;
  restartCount: number;
}

/**
 * Container records on disk: `containers/<id>/{config,state}.json`, and names as
 * symlinks `names/<name> -> <id>`, made with O_EXCL semantics by symlink(2), so two
 * processes can never take the same name, without any lock on the start path.
 * @internal
 */
export class RecordStore {
  readonly containersDir: string;
  readonly namesDir: string;
  /** Where removed container dirs wait for deletion. */
  readonly trashDir: string;
  private readonly deleting = new Set<Promise<void>>();

  constructor(root: string) {
    this.containersDir = join(root, 'containers');
    this.namesDir = join(root, 'names');
    this.trashDir = join(root, 'trash');
    mkdirSync(this.containersDir, { recursive: true });
    mkdirSync(this.namesDir, { recursive: true });
    mkdirSync(this.trashDir, { recursive: true });
  }

  /** Deletes what is in the trash, also what a crashed engine left there. */
  emptyTrash(): void {
    for (const entry of readdirSync(this.trashDir)) this.deleteLater(join(this.trashDir, entry));
  }

  /** Settles once every deletion started so far is done. */
  async drained(): Promise<void> {
    while (this.deleting.size) await Promise.all([...this.deleting]);
  }

  private deleteLater(path: string): void {
    const p: Promise<void> = rm(path, { recursive: true, force: true, maxRetries: 3 })
      .catch(() => undefined)
      .finally(() => this.deleting.delete(p));
    this.deleting.add(p);
  }

  dir(id: string): string {
    return join(this.containersDir, id);
  }

  /** Takes `name` for `id`; returns the id holding it when taken. */
  claimName(name: string, id: string): string | undefined {
    try {
      symlinkSync(id, join(this.namesDir, name));
      return undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      return this.nameOwner(name) ?? '(unknown)';
    }
  }

  nameOwner(name: string): string | undefined {
    try {
      return readlinkSync(join(this.namesDir, name));
    } catch {
      return undefined;
    }
  }

  releaseName(name: string, id: string): void {
    if (this.nameOwner(name) === id) unlinkSync(join(this.namesDir, name));
  }

  writeConfig(config: ContainerConfig): void {
    atomicWrite(join(this.dir(config.id), 'config.json'), JSON.stringify(config));
  }

  readConfig(id: string): ContainerConfig | undefined {
    return readJson(join(this.dir(id), 'config.json'));
  }

  writeState(id: string, state: ContainerState): void {
    atomicWrite(join(this.dir(id), 'state.json'), JSON.stringify(state));
  }

  readState(id: string): ContainerState | undefined {
    return readJson(join(this.dir(id), 'state.json'));
  }

  ids(): string[] {
    return readdirSync(this.containersDir).filter((n) => /^[0-9a-f]{64}$/.test(n));
  }

  /** Resolves a name, a full id or a unique id prefix. */
  resolve(nameOrId: string): string | undefined {
    const byName = this.nameOwner(nameOrId.startsWith('/') ? nameOrId.slice(1) : nameOrId);
    if (byName) return byName;
    if (!/^[0-9a-f]{1,64}$/.test(nameOrId)) return undefined;
    const hits = this.ids().filter((id) => id.startsWith(nameOrId));
    return hits.length === 1 ? hits[0] : undefined;
  }

  /**
   * Removes a container's record. Its directory is renamed into the trash (one
   * atomic step: the container is gone for every reader at once) and deleted in
   * the background, because deleting an upper dir file by file would hold up the
   * caller for milliseconds; {@link drained} waits for it.
   */
  remove(id: string, name: string): void {
    this.releaseName(name, id);
    const trash = join(this.trashDir, `${id}-${randomBytes(4).toString('hex')}`);
    try {
      renameSync(this.dir(id), trash);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      rmSync(this.dir(id), { recursive: true, force: true, maxRetries: 3 });
      return;
    }
    this.deleteLater(trash);
  }
}

let seq = 0;
/** Write to a temp file then rename, so a reader never sees half a file. */
export function atomicWrite(path: string, data: string): void {
  const tmp = `${path}.${process.pid}.${seq++}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}
