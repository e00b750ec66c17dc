/**
 * The OCI image layout, as a tar (oci-archive):
 *
 * ```
 * oci-layout           {"imageLayoutVersion": "1.0.0"}
 * index.json           one manifest descriptor per tag, named by annotations
 * blobs/sha256/<hex>   manifests, configs, compressed layers
 * ```
 *
 * A tag is written as `org.opencontainers.image.ref.name` in Docker's short
 * form (`busybox:latest`, what skopeo and podman read as the image's name) and
 * as `io.containerd.image.name` fully qualified (what Docker and containerd
 * read). Reading takes the containerd name first, then a ref.name that is a
 * whole reference; a bare tag (`latest`) names no repository, so such an image
 * is loaded untagged. An index inside index.json (a multi-platform image)
 * yields its manifest for this host's platform.
 * @module
 */

import { createReadStream } from 'node:fs';
import { InvalidArchiveError } from '../../errors.js';
import { type Sha256Digest } from '../digest.js';
import { buildManifest, originalManifest, type BuiltManifest } from '../distribution.js';
import { MediaType, parseIndex, parseManifest, type Descriptor } from '../oci.js';
import { formatReference, parseReference } from '../reference.js';
import { currentPlatform, selectManifest } from '../registry/platform.js';
import type { ImageIndex } from '../registry/manifest.js';
import type { ImageStore } from '../store.js';
import { addLoadItem, type LoadItem, type SaveItem } from './items.js';
import type { ArchiveFiles, SpooledFile } from './spool.js';
import type { ArchiveEntry } from './tar-writer.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const CONTAINERD_NAME = 'io.containerd.image.name';
const INDEX_TYPES = new Set<string>([MediaType.OciIndex, MediaType.DockerManifestList]);
const MANIFEST_TYPES = new Set<string>([MediaType.OciManifest, MediaType.DockerManifest]);
const CONFIG_TYPES = new Set<string>([MediaType.OciConfig, MediaType.DockerConfig]);

/**
 * The entries of an OCI layout holding `items`. Every layer's blob is made
 * ready first (see the layer-blobs module), as the manifests name them.
 */
export async function ociLayoutEntries(store: ImageStore, items: readonly SaveItem[], signal?: AbortSignal): Promise<AsyncIterable<ArchiveEntry>> {
  const manifests = new Map<string, BuiltManifest>();
  for (const { image } of items) {
    if (manifests.has(image.id)) continue;
    let manifest = originalManifest(store, image, ['oci']);
    if (!manifest) {
      const layers = [];
      for (const chainId of image.chainIds) layers.push(await store.layerBlob(chainId, signal ? { signal } : {}));
      manifest = buildManifest(store, image, layers, 'oci');
    }
    manifests.set(image.id, manifest);
  }

  const descriptors: Array<Record<string, unknown>> = [];
  for (const { image, tags } of items) {
    const m = manifests.get(image.id)!;
    const platform = { architecture: image.architecture, os: image.os, ...(image.variant ? { variant: image.variant } : {}) };
    const base = { mediaType: m.mediaType, digest: m.digest, size: m.bytes.length, platform };
    if (tags.length === 0) descriptors.push(base);
    for (const tag of tags) {
      descriptors.push({ ...base, annotations: { [CONTAINERD_NAME]: formatReference(parseReference(tag)), [REF_NAME]: tag } });
    }
  }
  const index = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: descriptors };

  return (async function* () {
    const bytes = (name: string, data: Buffer): ArchiveEntry => ({ name, size: data.length, data });
    yield bytes('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })));
    yield bytes('index.json', Buffer.from(JSON.stringify(index)));
    const written = new Set<string>();
    const blobName = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;
    for (const m of manifests.values()) {
      for (const d of [m.digest, m.config.digest, ...m.layers.map((l) => l.digest)]) {
        if (written.has(d)) continue;
        written.add(d);
        if (d === m.digest) yield bytes(blobName(d), m.bytes);
        else if (d === m.config.digest) yield bytes(blobName(d), store.readBlob(d));
        else {
          const size = m.layers.find((l) => l.digest === d)!.size;
          yield { name: blobName(d), size, data: () => createReadStream(store.blobPath(d), { highWaterMark: 1 << 20 }) };
        }
      }
    }
  })();
}

/**
 * The images of an OCI layout. Every blob used is checked against its
 * descriptor's digest and size.
 * @throws {@link InvalidArchiveError}, {@link InvalidImageError},
 *   {@link DigestMismatchError}, {@link NoMatchingPlatformError}.
 */
export function readOciLayout(files: ArchiveFiles): LoadItem[] {
  const layout = files.readJson('oci-layout', 'OCI layout marker') as { imageLayoutVersion?: unknown } | null;
  if (typeof layout?.imageLayoutVersion !== 'string') throw new InvalidArchiveError('oci-layout has no imageLayoutVersion');
  const index = parseIndex(files.read('index.json', 'index'));
  const items = new Map<string, LoadItem>();

  const blobName = (d: Descriptor, what: string): string => {
    const m = /^sha256:([a-f0-9]{64})$/.exec(d.digest);
    if (!m) throw new InvalidArchiveError(`${what} ${d.digest}: only sha256 digests are supported`);
    return `blobs/sha256/${m[1]}`;
  };
  // files.get checks that a blobs/sha256/<hex> file hashes to <hex>.
  const blob = (d: Descriptor, what: string): SpooledFile => {
    const file = files.get(blobName(d, what), what);
    if (file.size !== d.size) throw new InvalidArchiveError(`${what} ${d.digest} is ${file.size} bytes, its descriptor says ${d.size}`);
    return file;
  };
  const readBlob = (d: Descriptor, what: string): Buffer => {
    blob(d, what);
    return files.read(blobName(d, what), what);
  };

  const visit = (d: Descriptor, refs: string[], depth: number): void => {
    const mediaType = d.mediaType;
    if (INDEX_TYPES.has(mediaType)) {
      if (depth > 0) throw new InvalidArchiveError(`index ${d.digest} nests another index, which is not supported`);
      const nested = parseIndex(readBlob(d, 'index'));
      const chosen = selectManifest(nested as ImageIndex, currentPlatform(), refs[0] ?? d.digest);
      visit(chosen as Descriptor, refs, depth + 1);
      return;
    }
    if (!MANIFEST_TYPES.has(mediaType)) return; // artifacts, attestations: not images
    const manifest = parseManifest(readBlob(d, 'manifest'));
    if (!CONFIG_TYPES.has(manifest.config.mediaType)) return;
    const config = readBlob(manifest.config, 'image config');
    const layers = manifest.layers.map((l) => blob(l, 'layer'));
    addLoadItem(items, manifest.config.digest as Sha256Digest, config, layers, refs, `manifest ${d.digest}`);
  };

  for (const d of index.manifests) visit(d, refsOf(d), 0);
  if (items.size === 0) throw new InvalidArchiveError('index.json names no image');
  return [...items.values()];
}

/** The tag an index entry names the image by, when it names a repository. */
function refsOf(d: Descriptor): string[] {
  const full = d.annotations?.[CONTAINERD_NAME];
  if (full) return [full];
  const name = d.annotations?.[REF_NAME];
  if (name && /[/:]/.test(name) && !name.includes('@')) return [name];
  return [];
}
