/**
 * Every error dockless throws is a {@link DocklessError}; the subclasses say
 * what went wrong precisely enough to branch on with `instanceof`.
 *
 * The native addon constructs {@link SystemError} and {@link ContainerStartError}
 * itself (it is handed these classes at load), so errors raised in C are
 * instances of the same classes as errors raised in TypeScript.
 * @module
 */

/** Base class of every error thrown by dockless. */
export class DocklessError extends Error {
  /** A stable, machine-readable code such as `ERR_INVALID_OPTION`. */
  readonly code: string;
  constructor(message: string, code = 'ERR_DOCKLESS', options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option passed to dockless failed validation. Nothing was created. */
export class InvalidOptionError extends DocklessError {
  /** Dotted path of the offending option, e.g. `limits.memory`. */
  readonly option: string;
  constructor(option: string, message: string) {
    super(`invalid option ${option}: ${message}`, 'ERR_INVALID_OPTION');
    this.option = option;
  }
}

/** A system call failed outside a container's start sequence. */
export class SystemError extends DocklessError {
  /** The system call or operation that failed, e.g. `clone3` or `mkdir`. */
  readonly syscall: string;
  /** The positive errno value. */
  readonly errno: number;
  /** The symbolic errno name, e.g. `EPERM`, when known. */
  readonly errnoName: string;
  constructor(syscall: string, errno: number, detail?: string) {
    const name = errnoName(errno);
    super(`${syscall} failed: ${name}${detail ? ` (${detail})` : ''}`, 'ERR_SYSTEM');
    this.syscall = syscall;
    this.errno = errno;
    this.errnoName = name;
  }
}

/**
 * The container's first process (or an exec'd process) failed before it could
 * run the user's program. `step` names the setup step that failed inside the
 * new process, `errno` the kernel's answer.
 */
export class ContainerStartError extends DocklessError {
  /** The setup step that failed, e.g. `mount-rootfs`, `pivot_root`, `execve`. */
  readonly step: string;
  /** The positive errno value the step failed with. */
  readonly errno: number;
  /** The symbolic errno name, e.g. `ENOENT`. */
  readonly errnoName: string;
  /** The exit code Docker reports for this failure: 127 (not found), 126 (not executable) or 125. */
  readonly exitCode: number;
  constructor(step: string, errno: number, detail?: string) {
    const name = errnoName(errno);
    super(`container start failed at ${step}: ${name}${detail ? ` (${detail})` : ''}`, 'ERR_CONTAINER_START');
    this.step = step;
    this.errno = errno;
    this.errnoName = name;
    this.exitCode = step === 'execve' ? (errno === 2 || errno === 20 ? 127 : 126) : 125;
  }
}

/** The command of a container or exec was not found in the container (Docker's exit 127). */
export class CommandNotFoundError extends ContainerStartError {
  /** The command that was looked up. */
  readonly command: string;
  constructor(command: string, errno: number) {
    super('execve', errno, `${command}: executable file not found in $PATH`);
    this.command = command;
  }
}

/** No image matches the given reference or id. */
export class ImageNotFoundError extends DocklessError {
  /** The reference or id that was looked up. */
  readonly reference: string;
  constructor(reference: string) {
    super(`image not found: ${reference}`, 'ERR_IMAGE_NOT_FOUND');
    this.reference = reference;
  }
}

/** The image is used by a container and was not removed (pass `force` to remove it anyway). */
export class ImageInUseError extends DocklessError {
  constructor(image: string, containers: string[]) {
    super(`image ${image} is used by container(s) ${containers.join(', ')}`, 'ERR_IMAGE_IN_USE');
  }
}

/** A reference string is not a valid image reference. */
export class InvalidReferenceError extends DocklessError {
  /** The reference as given. */
  readonly reference: string;
  constructor(reference: string, reason: string) {
    super(`invalid reference ${JSON.stringify(reference)}: ${reason}`, 'ERR_INVALID_REFERENCE');
    this.reference = reference;
  }
}

/** A layer archive holds an entry that would write outside its layer, or is otherwise unsafe. */
export class UnsafeLayerError extends DocklessError {
  /** The offending entry's name inside the archive. */
  readonly entry: string;
  constructor(entry: string, reason: string) {
    super(`unsafe layer entry ${JSON.stringify(entry)}: ${reason}`, 'ERR_UNSAFE_LAYER');
    this.entry = entry;
  }
}

/** Content did not hash to the digest that names it. Nothing was stored. */
export class DigestMismatchError extends DocklessError {
  constructor(
    /** The digest that was expected. */
    readonly expected: string,
    /** The digest of what arrived. */
    readonly actual: string,
  ) {
    super(`digest mismatch: expected ${expected}, got ${actual}`, 'ERR_DIGEST_MISMATCH');
  }
}

/** No container matches the given name or id. */
export class ContainerNotFoundError extends DocklessError {
  constructor(readonly container: string) {
    super(`no such container: ${container}`, 'ERR_CONTAINER_NOT_FOUND');
  }
}

/** A container name is already taken, or is not a valid name. */
export class NameConflictError extends DocklessError {
  constructor(readonly containerName: string, existingId: string) {
    super(`container name ${JSON.stringify(containerName)} is already in use by container ${existingId}`, 'ERR_NAME_CONFLICT');
  }
}

/** The container is not in a state that allows the operation (e.g. exec into a stopped container). */
export class ContainerStateError extends DocklessError {
  constructor(readonly container: string, readonly state: string, operation: string) {
    super(`cannot ${operation} container ${container}: it is ${state}`, 'ERR_CONTAINER_STATE');
  }
}

/** The host cannot do what was asked (e.g. a cgroup controller is missing, or the kernel lacks a feature). */
export class UnsupportedError extends DocklessError {
  constructor(message: string) {
    super(message, 'ERR_UNSUPPORTED');
  }
}

/** The engine was closed, or the operation was aborted through an AbortSignal. */
export class AbortedError extends DocklessError {
  constructor(message = 'the operation was aborted') {
    super(message, 'ERR_ABORTED');
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 7: 'E2BIG', 8: 'ENOEXEC', 9: 'EBADF',
  10: 'ECHILD', 11: 'EAGAIN', 12: 'ENOMEM', 13: 'EACCES', 14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST',
  18: 'EXDEV', 19: 'ENODEV', 20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL', 23: 'ENFILE', 24: 'EMFILE',
  26: 'ETXTBSY', 28: 'ENOSPC', 30: 'EROFS', 31: 'EMLINK', 34: 'ERANGE', 36: 'ENAMETOOLONG', 38: 'ENOSYS',
  39: 'ENOTEMPTY', 40: 'ELOOP', 61: 'ENODATA', 95: 'EOPNOTSUPP', 110: 'ETIMEDOUT', 111: 'ECONNREFUSED',
};

/** Symbolic name of an errno value (`EPERM` for 1), or `errno N` when unknown. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/**
 * A registry answered a request with an error, or with something that breaks the
 * Distribution API. `status` is the HTTP status (0 when there was no answer) and
 * `registryCode` the first code of the registry's `errors[]` body, e.g. `BLOB_UNKNOWN`.
 */
export class RegistryError extends DocklessError {
  /** The registry host (as in the reference, e.g. `docker.io`, `localhost:5000`). */
  readonly registry: string;
  /** The HTTP status of the answer, 0 when there was none. */
  readonly status: number;
  /** The error code from the registry's `errors[]` JSON body, when it sent one. */
  readonly registryCode: string | undefined;
  constructor(
    registry: string,
    message: string,
    details: { status?: number; registryCode?: string; code?: string; cause?: unknown } = {},
  ) {
    super(`registry ${registry}: ${message}`, details.code ?? 'ERR_REGISTRY', { cause: details.cause });
    this.registry = registry;
    this.status = details.status ?? 0;
    this.registryCode = details.registryCode;
  }
}

/** The registry or its token server refused the credentials, or granted no access to the repository. */
export class AuthenticationError extends RegistryError {
  constructor(registry: string, message: string, details: { status?: number; registryCode?: string; cause?: unknown } = {}) {
    super(registry, message, { ...details, code: 'ERR_REGISTRY_AUTH' });
  }
}

/** The registry could not be reached at all (connection refused, DNS failure, TLS failure, timeout). */
export class RegistryUnavailableError extends RegistryError {
  constructor(registry: string, message: string, cause?: unknown) {
    super(registry, message, { code: 'ERR_REGISTRY_UNAVAILABLE', cause });
  }
}

/** The registry has no manifest for the reference: the repository, tag or digest does not exist there. */
export class ManifestNotFoundError extends ImageNotFoundError {
  /** The registry host that was asked. */
  readonly registry: string;
  /** The registry's error code (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`), when it sent one. */
  readonly registryCode: string | undefined;
  constructor(reference: string, registry: string, registryCode?: string) {
    super(reference);
    this.message = `image not found: ${reference}: registry ${registry} has no such manifest` +
      (registryCode ? ` (${registryCode})` : '');
    this.registry = registry;
    this.registryCode = registryCode;
  }
}

/**
 * An image cannot be removed as asked without `force`: it was named by id but is
 * tagged in several repositories (Docker's "must be forced" conflict).
 */
export class ImageConflictError extends DocklessError {
  /** The reference or id that was given. */
  readonly image: string;
  constructor(image: string, reason: string) {
    super(`unable to delete ${image} (must be forced): ${reason}`, 'ERR_IMAGE_CONFLICT');
    this.image = image;
  }
}

/** An image config or manifest is malformed, or names layers or blobs the store does not hold. */
export class InvalidImageError extends DocklessError {
  constructor(message: string) {
    super(`invalid image: ${message}`, 'ERR_INVALID_IMAGE');
  }
}

/** A multi-platform image has no manifest for the wanted platform. */
export class NoMatchingPlatformError extends ImageNotFoundError {
  /** The platform that was asked for, e.g. `linux/s390x`. */
  readonly platform: string;
  /** The platforms the image does have. */
  readonly available: string[];
  constructor(reference: string, platform: string, available: string[]) {
    super(reference);
    this.message = `image not found: ${reference}: no matching manifest for ${platform} in the manifest list entries` +
      ` (it has ${available.length ? available.join(', ') : 'none'})`;
    this.platform = platform;
    this.available = available;
  }
}

/**
 * An image archive (`docker save` / OCI layout tar) is malformed: not a tar,
 * no manifest, a path outside the archive, a missing or inconsistent entry.
 * Nothing from it was kept in the store.
 */
export class InvalidArchiveError extends DocklessError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(`invalid image archive: ${message}`, 'ERR_INVALID_ARCHIVE', options);
  }
}

/**
 * A layer has no stored blob and packing its unpacked files again does not give
 * back the tar its DiffID names, so it cannot be pushed or saved unchanged. It
 * happens for layers imported from tar archives whose entries are not in the
 * canonical form dockless writes (other order, `./` prefixes, user names).
 * Nothing was stored.
 */
export class LayerNotReproducibleError extends DocklessError {
  /** The layer's ChainID. */
  readonly chainId: string;
  constructor(
    chainId: string,
    /** The DiffID the image records. */
    readonly expected: string,
    /** The digest of the tar packed from the layer's files. */
    readonly actual: string,
  ) {
    super(
      `layer ${chainId} cannot be reproduced: its files pack to ${actual}, not to its DiffID ${expected} ` +
        '(it was imported from a tar not in canonical form; re-import it from a directory)',
      'ERR_LAYER_NOT_REPRODUCIBLE',
    );
    this.chainId = chainId;
  }
}
