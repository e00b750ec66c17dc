/**
 * The `docker save` format (docker-archive):
 *
 * ```
 * manifest.json              [{ "Config": "<hex>.json", "RepoTags": ["busybox:latest"], "Layers": ["<diffid hex>/layer.tar", …] }]
 * repositories               { "busybox": { "latest": "<top layer dir>" } } (what pre-1.10 Docker read)
 * <config digest hex>.json   the image config
 * <diffid hex>/layer.tar     each layer, an uncompressed tar, as Docker writes them
 * ```
 *
 * Written metadata first, so a reader could plan before the layers arrive.
 * Read in any order and any of its dialects: layer files named anything
 * (skopeo's `<hex>.tar`, Docker 25's `blobs/sha256/<hex>`), linked to each
 * other, compressed or not.
 * @module
 */

import { z } from 'zod';
import { DigestMismatchError, InvalidArchiveError } from '../../errors.js';
import { sha256Digest } from '../digest.js';
import { familiarName, parseReference } from '../reference.js';
import type { ImageStore } from '../store.js';
import { addLoadItem, type LoadItem, type SaveItem } from './items.js';
import type { ArchiveFiles } from './spool.js';
import type { ArchiveEntry } from './tar-writer.js';

const ManifestSchema = z.array(
  z.looseObject({
    Config: z.string().min(1),
    RepoTags: z.array(z.string()).nullish(),
    Layers: z.array(z.string().min(1)),
  }),
);

/**
 * The entries of a docker-archive holding `items`. Every layer's tar is made
 * ready (and its size known) before the first entry is produced, so a layer
 * that cannot be reproduced fails the save before anything is written.
 */
export async function dockerArchiveEntries(store: ImageStore, items: readonly SaveItem[], signal?: AbortSignal): Promise<AsyncIterable<ArchiveEntry>> {
  const layerDir = (diffId: string) => diffId.slice('sha256:'.length);
  const layers = new Map<string, Awaited<ReturnType<ImageStore['layerTar']>>>();
  for (const { image } of items) {
    for (const [i, chainId] of image.chainIds.entries()) {
      const diffId = image.diffIds[i]!;
      if (!layers.has(diffId)) layers.set(diffId, await store.layerTar(chainId, signal ? { signal } : {}));
    }
  }
  const manifest = items.map(({ image, tags }) => ({
    Config: `${image.id.slice('sha256:'.length)}.json`,
    RepoTags: tags.length ? tags : null,
    Layers: image.diffIds.map((d) => `${layerDir(d)}/layer.tar`),
  }));
  const repositories: Record<string, Record<string, string>> = {};
  for (const { image, tags } of items) {
    const top = image.diffIds[image.diffIds.length - 1];
    if (top === undefined) continue;
    for (const t of tags) {
      const ref = parseReference(t);
      (repositories[familiarName({ ...ref, tag: undefined })] ??= {})[ref.tag ?? 'latest'] = layerDir(top);
    }
  }

  return (async function* () {
    const json = (name: string, value: unknown): ArchiveEntry => {
      const data = Buffer.from(JSON.stringify(value));
      return { name, size: data.length, data };
    };
    yield json('manifest.json', manifest);
    yield json('repositories', repositories);
    const configs = new Set<string>();
    for (const { image } of items) {
      if (configs.has(image.id)) continue;
      configs.add(image.id);
      const data = store.readBlob(image.id);
      yield { name: `${image.id.slice('sha256:'.length)}.json`, size: data.length, data };
    }
    for (const [diffId, tar] of layers) yield { name: `${layerDir(diffId)}/layer.tar`, size: tar.size, data: () => tar.stream };
  })();
}

/**
 * The images of a docker-archive, checked against their names: a config must
 * hash to the digest its file name carries. Layers are checked against their
 * DiffIDs when they are unpacked.
 * @throws {@link InvalidArchiveError}, {@link InvalidImageError}, {@link DigestMismatchError}.
 */
export function readDockerArchive(files: ArchiveFiles): LoadItem[] {
  const parsed = ManifestSchema.safeParse(files.readJson('manifest.json', 'manifest'));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InvalidArchiveError(`manifest.json${issue.path.length ? ` at ${issue.path.join('.')}` : ''}: ${issue.message}`);
  }
  if (parsed.data.length === 0) throw new InvalidArchiveError('manifest.json lists no images');
  const items = new Map<string, LoadItem>();
  for (const [n, entry] of parsed.data.entries()) {
    const config = files.read(entry.Config, 'image config');
    const id = sha256Digest(config);
    const named = /(?:^|\/)([a-f0-9]{64})\.json$/.exec(entry.Config)?.[1];
    if (named !== undefined && `sha256:${named}` !== id) {
      throw new DigestMismatchError(`sha256:${named}`, id);
    }
    const layers = entry.Layers.map((l) => files.get(l, 'layer'));
    addLoadItem(items, id, config, layers, entry.RepoTags ?? [], `manifest.json entry ${n}`);
  }
  return [...items.values()];
}
