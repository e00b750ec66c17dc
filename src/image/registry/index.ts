/**
 * The registry side of images: resolving references to verified manifests,
 * streaming verified blobs, pushing, with Docker's auth, insecure-registry and
 * mirror conventions.
 * @module
 */

export {
  RegistryClient,
  type BlobSource,
  type FetchBlobOptions,
  type FetchedManifest,
  type PushBlobOptions,
  type PushBlobResult,
  type RegistryClientOptions,
  type ResolvedImage,
  type ResolveOptions,
} from './client.js';
export {
  credentialsFromDockerConfig,
  dockerConfigPath,
  InsecureRegistries,
  loadDockerConfig,
  type DockerConfigFile,
  type RegistryCredentials,
} from './config.js';
export {
  isIndexMediaType,
  MANIFEST_ACCEPT,
  MediaType,
  parseImageConfig,
  parseManifest,
  verifyDigest,
  type Descriptor,
  type ImageConfigFile,
  type ImageIndex,
  type ImageManifest,
  type ParsedManifest,
} from './manifest.js';
export {
  currentPlatform,
  formatPlatform,
  isAttestation,
  normalizePlatform,
  parsePlatform,
  platformMatches,
  selectManifest,
  type Platform,
} from './platform.js';
