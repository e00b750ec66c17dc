/**
 * dockless: run Linux containers from inside a Node process, with no daemon.
 *
 * ```ts
 * import { Engine } from 'dockless';
 * await using engine = await Engine.open();
 * await engine.images.import('/path/to/rootfs', { ref: 'demo:latest', changes: ['CMD ["sh"]'] });
 * const c = await engine.run({ image: 'demo', cmd: ['echo', 'hello'], wait: true });
 * console.log(await c.logs()); // hello
 * ```
 * @module
 */

export { Engine } from './engine.js';
export type { EngineOptions, ListOptions } from './engine.js';

export { Container } from './container/container.js';
export type { ContainerInspect, ExecOptions, ExecResult, ExitResult } from './container/container.js';
export type { ContainerOptions } from './container/options.js';
export type { ContainerState, ContainerStatus } from './state/records.js';
export type { ContainerAction, ContainerEvent, EngineEvents } from './container/events.js';
export type { LogEntry, LogOptions } from './container/logs.js';
export { Wait, ContainerNotReadyError } from './container/wait.js';
export type { WaitStrategy, WaitTarget } from './container/wait.js';
export { BaseStrategy, ListeningPortStrategy, LogMessageStrategy, OneShotStrategy, SuccessfulCommandStrategy } from './container/wait.js';

export { Images } from './image/images.js';
export type { ImageImportOptions, ImageSummary } from './image/images.js';
export type { ImageInspect, ImageRecord, ImportOptions, RemoveImageResult, PlatformSpec } from './image/store.js';
export type { ImageConfig, History } from './image/oci.js';
export type { ImagePullOptions, PullPolicy } from './image/images.js';
export type { PullProgress, PullStatus } from './image/pull.js';
export type { RegistryClientOptions } from './image/registry/client.js';
export type { RegistryCredentials } from './image/registry/config.js';
export type { Platform } from './image/registry/platform.js';
export type {
  ImageArchiveFormat,
  ImageDiskUsage,
  ImageLoadOptions,
  ImagePruneOptions,
  ImagePushOptions,
  ImageSaveOptions,
  ImageUsage,
  PushProgress,
} from './image/images.js';

export { Volumes, VolumeInUseError } from './volume/volumes.js';
export type { VolumeInfo } from './volume/volumes.js';

export type { ByteSize, Cgroup, CgroupDriver, CgroupLimits, CgroupStats, DeviceRate, DeviceRateInput, LimitsInput } from './isolation/cgroup/index.js';

export {
  DocklessError,
  InvalidOptionError,
  SystemError,
  ContainerStartError,
  CommandNotFoundError,
  ImageNotFoundError,
  ImageInUseError,
  InvalidReferenceError,
  UnsafeLayerError,
  DigestMismatchError,
  ContainerNotFoundError,
  NameConflictError,
  ContainerStateError,
  UnsupportedError,
  AbortedError,
  InvalidImageError,
  RegistryError,
  AuthenticationError,
  RegistryUnavailableError,
  ManifestNotFoundError,
  NoMatchingPlatformError,
  InvalidArchiveError,
  LayerNotReproducibleError,
} from './errors.js';
