/**
 * OCI image types (image config, manifest, index, descriptor) with zod schemas
 * that validate what a registry or an archive hands us.
 *
 * Schemas are loose: unknown fields are kept, because the store hashes and keeps
 * the original bytes (the image id is the digest of the config blob) and only
 * reads the fields it needs. Docker-written configs carry extra fields such as
 * `container_config`; they pass through untouched.
 * @module
 */

import { z } from 'zod';
import { InvalidImageError } from '../errors.js';

/** Media types of the OCI image spec and of Docker's schema 2: manifests, indexes, configs, layers. */
export const MediaType = {
  /** Docker image manifest, schema 2. */
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  /** Docker manifest list (multi-platform). */
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  /** Docker image config. */
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  /** Docker gzip-compressed layer. */
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  /** Docker layer that must be fetched from its `urls` (Windows base layers). */
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  /** OCI image manifest. */
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  /** OCI image index (multi-platform). */
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  /** OCI image config. */
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  /** OCI uncompressed layer. */
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  /** OCI gzip-compressed layer. */
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  /** OCI zstd-compressed layer. */
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
} as const;

const digest = z.string().regex(/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/, 'not a digest');

// Docker's strslice accepts a bare string where a list is expected and makes it a one-element list.
const strSlice = z.union([z.array(z.string()), z.string().transform((s) => [s])]);
const emptyObjectMap = z.record(z.string(), z.looseObject({}));

/** Docker's HEALTHCHECK, durations in nanoseconds. */
export const HealthcheckSchema = z.looseObject({
  /** `["NONE"]`, `["CMD", arg...]` or `["CMD-SHELL", command]`. */
  Test: z.array(z.string()).nullish(),
  Interval: z.number().int().nonnegative().optional(),
  Timeout: z.number().int().nonnegative().optional(),
  StartPeriod: z.number().int().nonnegative().optional(),
  StartInterval: z.number().int().nonnegative().optional(),
  Retries: z.number().int().nonnegative().optional(),
});
/** Docker's HEALTHCHECK, durations in nanoseconds. */
export type Healthcheck = z.infer<typeof HealthcheckSchema>;

/**
 * The execution parameters of an image: the `config` member of an OCI image
 * config, with Docker's field names. Every field is optional; `null` is accepted
 * where Docker writes it.
 */
export const ImageConfigSchema = z.looseObject({
  User: z.string().optional(),
  ExposedPorts: emptyObjectMap.nullish(),
  Env: z.array(z.string()).nullish(),
  Entrypoint: strSlice.nullish(),
  Cmd: strSlice.nullish(),
  Volumes: emptyObjectMap.nullish(),
  WorkingDir: z.string().optional(),
  Labels: z.record(z.string(), z.string()).nullish(),
  StopSignal: z.string().optional(),
  ArgsEscaped: z.boolean().optional(),
  Healthcheck: HealthcheckSchema.nullish(),
  OnBuild: z.array(z.string()).nullish(),
  Shell: z.array(z.string()).nullish(),
});

/** The execution parameters of an image (the `config` object of an OCI image config). */
export interface ImageConfig {
  /** `user`, `uid`, `user:group` or `uid:gid`. */
  User?: string;
  /** Ports as `"80/tcp"` keys with empty objects as values. */
  ExposedPorts?: Record<string, Record<string, never>> | null;
  /** `KEY=value` strings. */
  Env?: string[] | null;
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  /** Container paths as keys with empty objects as values. */
  Volumes?: Record<string, Record<string, never>> | null;
  WorkingDir?: string;
  Labels?: Record<string, string> | null;
  /** A signal name (`SIGTERM`) or number as a string. */
  StopSignal?: string;
  ArgsEscaped?: boolean;
  Healthcheck?: Healthcheck | null;
  OnBuild?: string[] | null;
  Shell?: string[] | null;
  [key: string]: unknown;
}

/** One entry of an image's history. */
export const HistorySchema = z.looseObject({
  created: z.string().optional(),
  created_by: z.string().optional(),
  author: z.string().optional(),
  comment: z.string().optional(),
  /** True when the step made no layer (ENV, CMD, ...). */
  empty_layer: z.boolean().optional(),
});
/** One entry of an image's history. */
export interface History {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  /** True when the step made no layer (ENV, CMD, ...). */
  empty_layer?: boolean;
  [key: string]: unknown;
}

/** An OCI image config blob (`application/vnd.oci.image.config.v1+json`). */
export const OciImageSchema = z.looseObject({
  created: z.string().optional(),
  author: z.string().optional(),
  architecture: z.string().optional(),
  os: z.string().optional(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  variant: z.string().optional(),
  config: ImageConfigSchema.nullish(),
  rootfs: z.looseObject({
    type: z.literal('layers'),
    diff_ids: z.array(z.string().regex(/^sha256:[a-f0-9]{64}$/, 'diff_ids must be sha256 digests')),
  }),
  history: z.array(HistorySchema).nullish(),
});

/** An OCI image config blob (`application/vnd.oci.image.config.v1+json`). */
export interface OciImage {
  created?: string;
  author?: string;
  architecture?: string;
  os?: string;
  'os.version'?: string;
  'os.features'?: string[];
  variant?: string;
  config?: ImageConfig | null;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: History[] | null;
  [key: string]: unknown;
}

/** The platform an image or manifest is built for. */
export const PlatformSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  variant: z.string().optional(),
});
/** The platform an image or manifest is built for. */
export type Platform = z.infer<typeof PlatformSchema>;

/** A content descriptor: what a manifest or index points at. */
export const DescriptorSchema = z.looseObject({
  mediaType: z.string(),
  digest,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: PlatformSchema.optional(),
  artifactType: z.string().optional(),
});
/** A content descriptor: what a manifest or index points at. */
export type Descriptor = z.infer<typeof DescriptorSchema>;

/** An image manifest, OCI or Docker schema 2 (the two have the same shape). */
export const ManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema),
  subject: DescriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
/** An image manifest, OCI or Docker schema 2. */
export type Manifest = z.infer<typeof ManifestSchema>;

/** An image index or Docker manifest list: one manifest per platform. */
export const IndexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(DescriptorSchema),
  subject: DescriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
/** An image index or Docker manifest list. */
export type Index = z.infer<typeof IndexSchema>;

/**
 * Parses JSON bytes with a schema.
 * @throws {@link InvalidImageError} naming `what` and the first problem found.
 */
export function parseJson<S extends z.ZodType>(schema: S, bytes: Uint8Array | string, what: string): z.output<S> {
  let value: unknown;
  try {
    value = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new InvalidImageError(`${what} is not JSON: ${(err as Error).message}`);
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const path = issue.path.map(String).join('.');
    throw new InvalidImageError(`${what}${path ? ` field ${path}` : ''}: ${issue.message}`);
  }
  return result.data;
}

/** Parses and validates an image config blob. @throws {@link InvalidImageError} */
export function parseImage(bytes: Uint8Array | string): OciImage {
  return parseJson(OciImageSchema, bytes, 'image config') as OciImage;
}

/** Parses and validates an image manifest. @throws {@link InvalidImageError} */
export function parseManifest(bytes: Uint8Array | string): Manifest {
  return parseJson(ManifestSchema, bytes, 'image manifest');
}

/** Parses and validates an image index or manifest list. @throws {@link InvalidImageError} */
export function parseIndex(bytes: Uint8Array | string): Index {
  return parseJson(IndexSchema, bytes, 'image index');
}

/** The OCI architecture name of the host (`x64` → `amd64`), with its variant where OCI has one. */
export function hostPlatform(): { os: string; architecture: string; variant?: string } {
  switch (process.arch) {
    case 'x64':
      return { os: 'linux', architecture: 'amd64' };
    case 'arm64':
      return { os: 'linux', architecture: 'arm64' };
    case 'arm':
      return { os: 'linux', architecture: 'arm', variant: 'v7' };
    case 'ia32':
      return { os: 'linux', architecture: '386' };
    case 'ppc64':
      return { os: 'linux', architecture: 'ppc64le' };
    default:
      return { os: 'linux', architecture: process.arch };
  }
}
