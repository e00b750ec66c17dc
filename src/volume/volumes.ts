import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DocklessError, InvalidOptionError } from '../errors.js';

/** A named volume (`docker volume inspect`). */
export interface VolumeInfo {
  Name: string;
  Driver: 'local';
  /** Host directory holding the volume's data. */
  Mountpoint: string;
  CreatedAt: string;
}

/** The volume is used by a container and was not removed. */
export class VolumeInUseError extends DocklessError {
  constructor(name: string, containers: string[]) {
    super(`volume ${name} is in use by container(s) ${containers.join(', ')}`, 'ERR_VOLUME_IN_USE');
  }
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/**
 * Named volumes: directories under `<root>/volumes/<name>/_data` (Docker's layout),
 * bind-mounted into containers. Created on first use, as `docker run -v name:/path` does.
 */
export class Volumes {
  private readonly dir: string;

  /** @internal */
  constructor(
    root: string,
    private readonly usedBy: (name: string) => string[],
  ) {
    this.dir = join(root, 'volumes');
    mkdirSync(this.dir, { recursive: true });
  }

  /** Creates the volume if it does not exist; returns its details. */
  create(name: string): VolumeInfo {
    if (!NAME_RE.test(name)) throw new InvalidOptionError('name', `invalid volume name ${JSON.stringify(name)}`);
    mkdirSync(join(this.dir, name, '_data'), { recursive: true, mode: 0o755 });
    return this.inspect(name);
  }

  /** Details of an existing volume. */
  inspect(name: string): VolumeInfo {
    const mountpoint = join(this.dir, name, '_data');
    let created: Date;
    try {
      created = statSync(mountpoint).birthtime;
    } catch {
      throw new DocklessError(`no such volume: ${name}`, 'ERR_VOLUME_NOT_FOUND');
    }
    return { Name: name, Driver: 'local', Mountpoint: mountpoint, CreatedAt: created.toISOString() };
  }

  /** Every volume. */
  list(): VolumeInfo[] {
    return readdirSync(this.dir).filter((n) => NAME_RE.test(n)).map((n) => this.inspect(n));
  }

  /** Deletes a volume and its data; refused while a container uses it unless `force`. */
  remove(name: string, options: { force?: boolean } = {}): void {
    this.inspect(name);
    const users = this.usedBy(name);
    if (users.length && !options.force) throw new VolumeInUseError(name, users);
    rmSync(join(this.dir, name), { recursive: true, force: true });
  }

  /** Host path of a volume's data, creating the volume when missing. @internal */
  path(name: string): string {
    return this.create(name).Mountpoint;
  }
}
