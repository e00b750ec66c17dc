/**
 * Image references ("busybox", "ghcr.io/org/app:1.2", "alpine@sha256:…") parsed
 * and normalized the way Docker does it, so that a name typed for `docker pull`
 * means the same image here.
 *
 * The grammar is the one of distribution/reference; the normalization (default
 * registry `docker.io`, `library/` for official images, tag `latest`) is the one
 * of Docker's `ParseNormalizedNamed` + `TagNameOnly`.
 * @module
 */

import { InvalidReferenceError } from '../errors.js';

/** A parsed, normalized image reference. */
export interface ImageReference {
  /** Registry host, with port when one was given: `docker.io`, `localhost:5000`, `ghcr.io`. */
  registry: string;
  /** Repository path inside the registry, always lowercase: `library/busybox`, `org/app`. */
  repository: string;
  /** The tag; `latest` when the reference named neither a tag nor a digest. */
  tag?: string;
  /** The content digest (`sha256:<64 hex>`) when the reference pins one. */
  digest?: string;
}

/** The registry that names without a registry host refer to. */
export const DEFAULT_REGISTRY = 'docker.io';
/** The tag that names without tag or digest refer to. */
export const DEFAULT_TAG = 'latest';
/** Maximum length of a full name (registry + "/" + repository), as in distribution/reference. */
export const NAME_MAX_LENGTH = 255;

// Grammar of distribution/reference (regexp.go), anchored piece by piece so that
// a failure can say which piece is wrong.
const ALNUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = new RegExp(`^${ALNUM}(?:${SEPARATOR}${ALNUM})*$`);
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(
  `^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?$`,
);
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST_SHAPE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
/** Digest algorithms we can verify, with the length of their lowercase hex encoding. */
const DIGEST_HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };
const HEX64 = /^[a-f0-9]{64}$/;

/**
 * Check that `digest` is `<algorithm>:<hex>` with an algorithm we can verify
 * (sha256, sha512) and lowercase hex of the right length.
 * @returns the reason it is invalid, or `undefined` when it is valid.
 */
export function digestProblem(digest: string): string | undefined {
  if (!DIGEST_SHAPE.test(digest)) return `invalid digest ${JSON.stringify(digest)}`;
  const colon = digest.indexOf(':');
  const algorithm = digest.slice(0, colon);
  const hex = digest.slice(colon + 1);
  const length = DIGEST_HEX_LENGTH[algorithm];
  if (length === undefined) return `invalid digest: unsupported digest algorithm ${JSON.stringify(algorithm)}`;
  if (hex.length !== length || !/^[a-f0-9]+$/.test(hex)) {
    return `invalid digest: ${algorithm} needs ${length} lowercase hex characters`;
  }
  return undefined;
}

/** True when `digest` is a well-formed, verifiable digest such as `sha256:<64 hex>`. */
export function isDigest(digest: string): boolean {
  return digestProblem(digest) === undefined;
}

/**
 * True when `s` is an image id rather than a name: `sha256:<64 hex>` or a bare
 * 64-character lowercase hex string (Docker refuses such strings as names).
 */
export function isImageId(s: string): boolean {
  if (s.startsWith('sha256:')) return HEX64.test(s.slice(7));
  return HEX64.test(s);
}

/**
 * Parse and normalize an image reference the way `docker pull` does.
 *
 * - `busybox` → `docker.io/library/busybox:latest`
 * - `user/app:1` → `docker.io/user/app:1`
 * - `localhost:5000/app@sha256:…` → registry `localhost:5000`, digest only (no tag is added)
 * - `index.docker.io/…` is the same registry as `docker.io`
 *
 * The first path component is a registry host when it contains `.` or `:`, is
 * `localhost`, or (as in Docker) contains uppercase letters.
 * @throws InvalidReferenceError naming what is wrong (uppercase letters
 *   in the repository name, invalid tag, invalid digest, name too long, …).
 */
export function parseReference(s: string): ImageReference {
  const fail = (reason: string): never => {
    throw new InvalidReferenceError(s, reason);
  };
  if (typeof s !== 'string' || s.length === 0) return fail('empty reference');
  if (isImageId(s) && !s.startsWith('sha256:')) {
    return fail('a 64-character hexadecimal string is an image id, not a repository name');
  }

  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    const problem = digestProblem(digest);
    if (problem) fail(problem);
  }

  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) {
      fail(`invalid tag ${JSON.stringify(tag)}: a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with '.' or '-'`);
    }
  }
  if (rest.length === 0) fail('empty repository name');

  let registry = DEFAULT_REGISTRY;
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash !== -1) {
    const first = rest.slice(0, slash);
    if (/[.:]/.test(first) || first === 'localhost' || first.toLowerCase() !== first) {
      registry = first;
      repository = rest.slice(slash + 1);
      if (!DOMAIN.test(registry)) fail(`invalid registry host ${JSON.stringify(registry)}`);
    }
  }
  if (registry === 'index.docker.io') registry = DEFAULT_REGISTRY;
  if (registry === DEFAULT_REGISTRY && !repository.includes('/')) repository = `library/${repository}`;

  for (const component of repository.split('/')) {
    if (component.length === 0) fail('empty path component in repository name');
    if (PATH_COMPONENT.test(component)) continue;
    if (PATH_COMPONENT.test(component.toLowerCase())) {
      fail('uppercase letters in repository name: repository names must be lowercase');
    }
    fail(
      `invalid repository name component ${JSON.stringify(component)}: ` +
        'components are lowercase letters and digits, separated by ".", "_", "__" or dashes',
    );
  }
  const fullLength = registry.length + 1 + repository.length;
  if (fullLength > NAME_MAX_LENGTH) {
    fail(`repository name is ${fullLength} characters long, more than ${NAME_MAX_LENGTH}`);
  }

  const ref: ImageReference = { registry, repository };
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** `registry/repository`, e.g. `docker.io/library/busybox`. */
export function formatRepository(r: ImageReference): string {
  return `${r.registry}/${r.repository}`;
}

/**
 * The canonical, fully qualified form: `docker.io/library/busybox:latest`,
 * `localhost:5000/app:1@sha256:…`. Parsing it gives back the same reference.
 */
export function formatReference(r: ImageReference): string {
  return formatRepository(r) + suffix(r);
}

/**
 * The short form Docker shows (`docker images`, `docker ps`): the registry is
 * left out for docker.io and so is `library/`, e.g. `busybox:latest`,
 * `user/app:1`, `localhost:5000/app:1`.
 */
export function familiarName(r: ImageReference): string {
  let name = formatRepository(r);
  if (r.registry === DEFAULT_REGISTRY) {
    name = r.repository.startsWith('library/') && r.repository.split('/').length === 2
      ? r.repository.slice('library/'.length)
      : r.repository;
  }
  return name + suffix(r);
}

function suffix(r: ImageReference): string {
  return (r.tag !== undefined ? `:${r.tag}` : '') + (r.digest !== undefined ? `@${r.digest}` : '');
}
