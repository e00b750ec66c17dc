import { z } from 'zod';
import type { PullProgress } from './pull.js';
import type { RegistryCredentials } from './registry/config.js';
import type { Platform } from './registry/platform.js';

/** Options for {@link Images.pull}. */
export interface ImagePullOptions {
  /**
   * The platform to pull from a multi-platform image, as `os/arch[/variant]`
   * (`linux/arm64`) or an object; the host's by default. A single-platform
   * image of another platform is refused when this is given.
   */
  platform?: string | Platform;
  /**
   * Called for every layer as it goes from `waiting` through `downloading` and
   * `extracting` to `done` (or is `exists` at once), with byte counts for a
   * progress bar. Errors it throws are ignored.
   */
  onProgress?: (progress: PullProgress) => void;
  /** Aborting stops the pull and removes what it stored; it then rejects with {@link AbortedError}. */
  signal?: AbortSignal;
  /**
   * Credentials for the image's registry, for this pull only; they win over
   * the engine's `registry.auth` and Docker's config file.
   */
  auth?: RegistryCredentials;
  /** How many layers to download at once; default 3, as Docker. */
  concurrency?: number;
}

const fn = <T>(what: string) => z.custom<T>((v) => typeof v === 'function', `must be ${what}`);

const credentialsSchema = z
  .object({
    username: z.string().optional(),
    password: z.string().optional(),
    identityToken: z.string().optional(),
    registryToken: z.string().optional(),
  })
  .strict();

const platformSchema = z.union([
  z.string().min(1, 'must not be empty'),
  z.looseObject({ os: z.string().min(1), architecture: z.string().min(1), variant: z.string().optional() }),
]);

/** The schema behind {@link ImagePullOptions}. @internal */
export const imagePullOptionsSchema = z
  .object({
    platform: platformSchema.optional(),
    onProgress: fn<(progress: PullProgress) => void>('a function').optional(),
    signal: z.custom<AbortSignal>((v) => v instanceof AbortSignal, 'must be an AbortSignal').optional(),
    auth: credentialsSchema.optional(),
    concurrency: z.number().int().min(1).max(64).optional(),
  })
  .strict();

/** The schema behind `EngineOptions.registry` ({@link RegistryClientOptions}). @internal */
export const registryOptionsSchema = z
  .object({
    insecureRegistries: z.array(z.string().min(1)).optional(),
    mirrors: z.array(z.string().min(1)).optional(),
    endpoints: z.record(z.string(), z.string()).optional(),
    auth: z.union([z.record(z.string(), credentialsSchema), fn<(registry: string) => unknown>('a function or a map of credentials')]).optional(),
    dockerConfigPath: z.union([z.string().min(1), z.literal(false)]).optional(),
    fetch: fn<typeof fetch>('a fetch function').optional(),
    userAgent: z.string().min(1).optional(),
    maxBlobRetries: z.number().int().min(0).max(100).optional(),
  })
  .strict();
