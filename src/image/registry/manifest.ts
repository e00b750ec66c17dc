/**
 * Manifests, indexes and image configs as registries serve them: the Docker
 * schema2 and OCI media types, their validation, and the content-addressing
 * helpers that make sure nothing unverified is handed on.
 * @module
 */

import { createHash } from 'node:crypto';
import { z } from 'zod';
import { DigestMismatchError, UnsupportedError } from '../../errors.js';
import type { InvalidImageError } from '../../errors.js';
import { MediaType } from '../oci.js';
import { isDigest } from '../reference.js';
import type { Platform } from './platform.js';

export { MediaType };

/** The media types sent in `Accept` when fetching a manifest, preferred first. */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.DockerManifestList,
  MediaType.OciManifest,
  MediaType.DockerManifest,
] as const;

const SCHEMA1_TYPES = new Set([
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
]);
const INDEX_TYPES = new Set<string>([MediaType.OciIndex, MediaType.DockerManifestList]);
const MANIFEST_TYPES = new Set<string>([MediaType.OciManifest, MediaType.DockerManifest]);

/** Manifests larger than this are refused (containerd uses the same bound): they are JSON, not data. */
export const MAX_MANIFEST_SIZE = 4 * 1024 * 1024;
/** Image configs larger than this are refused. */
export const MAX_CONFIG_SIZE = 16 * 1024 * 1024;

/** A content descriptor: what a blob or manifest is, how big, and its digest. */
export interface Descriptor {
  /** Media type of the referenced content. */
  mediaType: string;
  /** Digest of the content, e.g. `sha256:<64 hex>`. */
  digest: string;
  /** Size of the content in bytes. */
  size: number;
  /** Alternative download locations (foreign layers). */
  urls?: string[];
  /** Arbitrary annotations. */
  annotations?: Record<string, string>;
  /** The platform of a manifest referenced from an index. */
  platform?: Platform;
  /** The artifact type of the referenced content (OCI 1.1). */
  artifactType?: string;
}

/** An image manifest: a config and an ordered list of layers (Docker schema2 or OCI). */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  /** The image config blob. */
  config: Descriptor;
  /** The layers, base first. */
  layers: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
  artifactType?: string;
}

/** A multi-platform index: one manifest per platform (Docker manifest list or OCI index). */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  /** The manifests, each usually with a `platform`. */
  manifests: Descriptor[];
  annotations?: Record<string, string>;
  subject?: Descriptor;
  artifactType?: string;
}

/**
 * The image config blob (the part dockless reads; other fields are kept).
 * Its digest is the image id.
 */
export interface ImageConfigFile {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  created?: string;
  author?: string;
  /** The container defaults: Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels, StopSignal, … */
  config?: Record<string, unknown>;
  /** The uncompressed digests of the layers, base first (one per layer of the manifest). */
  rootfs: { type: string; diff_ids: string[] };
  history?: Array<Record<string, unknown>>;
  [key: string]: unknown;
}

const digestSchema = z.string().refine(isDigest, { message: 'not a valid digest' });
const annotationsSchema = z.record(z.string(), z.string());
const platformSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  features: z.array(z.string()).optional(),
});
const descriptorSchema = z.looseObject({
  mediaType: z.string().min(1),
  digest: digestSchema,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: annotationsSchema.optional(),
  platform: platformSchema.optional(),
  artifactType: z.string().optional(),
});
const manifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  annotations: annotationsSchema.optional(),
  subject: descriptorSchema.optional(),
  artifactType: z.string().optional(),
});
const indexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema),
  annotations: annotationsSchema.optional(),
  subject: descriptorSchema.optional(),
  artifactType: z.string().optional(),
});
const configSchema = z.looseObject({
  architecture: z.string(),
  os: z.string(),
  variant: z.string().optional(),
  config: z.record(z.string(), z.unknown()).nullish(),
  rootfs: z.looseObject({ type: z.string(), diff_ids: z.array(digestSchema) }),
  history: z.array(z.record(z.string(), z.unknown())).optional(),
});

/** A manifest document as fetched, already verified against its digest. */
export type ParsedManifest =
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest }
  | { kind: 'index'; mediaType: string; index: ImageIndex };

/**
 * A document does not have the shape its media type promises. The client turns
 * it into an {@link InvalidImageError} that names the registry and the image.
 * @internal
 */
export class ManifestFormatError extends Error {}

/** `sha256:<hex>` of `bytes`. */
export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** The digest of `bytes` computed with the algorithm of `digest` (sha256 or sha512). */
export function digestOf(bytes: Uint8Array, algorithmOf: string): string {
  const algorithm = algorithmOf.slice(0, algorithmOf.indexOf(':'));
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/**
 * Throw {@link DigestMismatchError} unless `bytes` hash to `expected`.
 * @returns `expected`.
 */
export function verifyDigest(bytes: Uint8Array, expected: string): string {
  const actual = digestOf(bytes, expected);
  if (actual !== expected) throw new DigestMismatchError(expected, actual);
  return expected;
}

/**
 * Parse a manifest or index. The media type is taken from the document's own
 * `mediaType` when it has one (it is what the digest covers), else from the
 * Content-Type, else inferred from the shape as OCI allows.
 * @throws UnsupportedError for schema1 manifests and unknown media types.
 * @throws ManifestFormatError when the JSON is malformed.
 */
export function parseManifest(bytes: Uint8Array, contentType?: string): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new ManifestFormatError(`manifest is not JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ManifestFormatError('manifest is not a JSON object');
  }
  const doc = json as Record<string, unknown>;
  const header = contentType?.split(';')[0]?.trim().toLowerCase();
  const declared = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if (doc.schemaVersion === 1 || SCHEMA1_TYPES.has(declared ?? '') || SCHEMA1_TYPES.has(header ?? '')) {
    throw new UnsupportedError('schema1 manifests are not supported (they were deprecated and removed from Docker); push the image again with a current tool');
  }
  if (declared && header && header !== declared && isKnown(header)) {
    throw new ManifestFormatError(`manifest declares media type ${declared} but was served as ${header}`);
  }
  let mediaType = declared ?? (header && isKnown(header) ? header : undefined);
  if (!mediaType) mediaType = Array.isArray(doc.manifests) ? MediaType.OciIndex : MediaType.OciManifest;

  if (INDEX_TYPES.has(mediaType)) {
    const result = indexSchema.safeParse(doc);
    if (!result.success) throw new ManifestFormatError(`malformed ${mediaType}: ${summarize(result.error)}`);
    return { kind: 'index', mediaType, index: result.data as ImageIndex };
  }
  if (MANIFEST_TYPES.has(mediaType)) {
    const result = manifestSchema.safeParse(doc);
    if (!result.success) throw new ManifestFormatError(`malformed ${mediaType}: ${summarize(result.error)}`);
    return { kind: 'manifest', mediaType, manifest: result.data as ImageManifest };
  }
  throw new UnsupportedError(`unsupported manifest media type ${mediaType}`);
}

/**
 * Parse an image config blob and check it against its manifest: one diff id
 * per layer, as Docker requires.
 * @throws ManifestFormatError when it is malformed or does not fit the manifest.
 */
export function parseImageConfig(bytes: Uint8Array, manifest?: ImageManifest): ImageConfigFile {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new ManifestFormatError(`image config is not JSON: ${(e as Error).message}`);
  }
  const result = configSchema.safeParse(json);
  if (!result.success) throw new ManifestFormatError(`malformed image config: ${summarize(result.error)}`);
  const config = result.data as ImageConfigFile;
  if (manifest && config.rootfs.diff_ids.length !== manifest.layers.length) {
    throw new ManifestFormatError(
      `image config lists ${config.rootfs.diff_ids.length} layer diff ids but the manifest has ${manifest.layers.length} layers`,
    );
  }
  return config;
}

/** True for the media types of indexes (manifest lists). */
export function isIndexMediaType(mediaType: string): boolean {
  return INDEX_TYPES.has(mediaType);
}

function isKnown(mediaType: string): boolean {
  return INDEX_TYPES.has(mediaType) || MANIFEST_TYPES.has(mediaType) || SCHEMA1_TYPES.has(mediaType);
}

function summarize(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join('; ');
}
