import { describe, expect, it } from 'vitest';
import { InvalidReferenceError } from '../src/errors.js';
import {
  familiarName,
  formatReference,
  isDigest,
  isImageId,
  parseReference,
} from '../src/image/reference.js';

const D = `sha256:${'a'.repeat(64)}`;

describe('parseReference', () => {
  it.each([
    ['busybox', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' }],
    ['busybox:1.36', { registry: 'docker.io', repository: 'library/busybox', tag: '1.36' }],
    ['library/busybox', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' }],
    ['docker.io/busybox', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' }],
    ['index.docker.io/busybox', { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' }],
    ['user/app', { registry: 'docker.io', repository: 'user/app', tag: 'latest' }],
    ['user/team/app:v1', { registry: 'docker.io', repository: 'user/team/app', tag: 'v1' }],
    ['localhost/app', { registry: 'localhost', repository: 'app', tag: 'latest' }],
    ['localhost:5000/app:t', { registry: 'localhost:5000', repository: 'app', tag: 't' }],
    ['127.0.0.1:5000/a/b', { registry: '127.0.0.1:5000', repository: 'a/b', tag: 'latest' }],
    ['[::1]:5000/app', { registry: '[::1]:5000', repository: 'app', tag: 'latest' }],
    ['ghcr.io/org/app', { registry: 'ghcr.io', repository: 'org/app', tag: 'latest' }],
    // Docker treats an uppercase first component as a registry host.
    ['Registry/app', { registry: 'Registry', repository: 'app', tag: 'latest' }],
    // A host without a path is a repository with a tag, as in Docker.
    ['localhost:5000', { registry: 'docker.io', repository: 'library/localhost', tag: '5000' }],
    [`busybox@${D}`, { registry: 'docker.io', repository: 'library/busybox', digest: D }],
    [`busybox:1@${D}`, { registry: 'docker.io', repository: 'library/busybox', tag: '1', digest: D }],
    ['a-b.c--d/g', { registry: 'a-b.c--d', repository: 'g', tag: 'latest' }],
    ['a_b__c--d.e', { registry: 'docker.io', repository: 'library/a_b__c--d.e', tag: 'latest' }],
    ['busybox:_W.x-1', { registry: 'docker.io', repository: 'library/busybox', tag: '_W.x-1' }],
  ])('%s', (input, expected) => {
    expect(parseReference(input)).toEqual(expected);
  });

  it.each([
    ['', /empty reference/],
    ['Busybox', /uppercase letters in repository name/],
    ['user/App', /uppercase letters in repository name/],
    ['busybox:', /invalid tag/],
    ['busybox:-x', /invalid tag/],
    ['busybox:.x', /invalid tag/],
    [`busybox:${'x'.repeat(129)}`, /invalid tag/],
    ['busybox@sha256:abc', /invalid digest/],
    [`busybox@sha256:${'A'.repeat(64)}`, /invalid digest/],
    [`busybox@md5:${'a'.repeat(32)}`, /unsupported digest algorithm/],
    [`busybox@${D}@${D}`, /invalid digest/],
    ['a//b', /empty path component/],
    ['/busybox', /empty path component/],
    ['busybox/', /empty path component/],
    ['a/b_-c', /invalid repository name component "b_-c"/],
    ['a/-b', /invalid repository name component/],
    ['a/b..c', /invalid repository name component/],
    ['a/b___c', /invalid repository name component/],
    ['-bad.host/app', /invalid registry host/],
    ['host:port/app', /invalid registry host/],
    ['a_b.c/app', /invalid registry host/],
    ['a'.repeat(64).replace(/a/g, 'f'), /image id/],
    [`example.com/${'a'.repeat(244)}`, /more than 255/],
    [':tag', /empty repository name/],
  ])('rejects %j', (input, message) => {
    const err = (() => {
      try {
        parseReference(input);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(InvalidReferenceError);
    expect((err as InvalidReferenceError).message).toMatch(message);
    expect((err as InvalidReferenceError).reference).toBe(input);
  });

  it('accepts a name of exactly 255 characters', () => {
    const name = `example.com/${'a'.repeat(243)}`;
    expect(name.length).toBe(255);
    expect(parseReference(name).repository).toBe('a'.repeat(243));
  });
});

describe('formatting', () => {
  it.each([
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['user/app:1', 'docker.io/user/app:1', 'user/app:1'],
    ['library/a/b', 'docker.io/library/a/b:latest', 'library/a/b:latest'],
    ['localhost:5000/app', 'localhost:5000/app:latest', 'localhost:5000/app:latest'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`],
    [`q.io/x:t@${D}`, `q.io/x:t@${D}`, `q.io/x:t@${D}`],
  ])('%s', (input, canonical, familiar) => {
    const ref = parseReference(input);
    expect(formatReference(ref)).toBe(canonical);
    expect(familiarName(ref)).toBe(familiar);
    expect(parseReference(canonical)).toEqual(ref);
    expect(parseReference(familiar)).toEqual(ref);
  });
});

describe('ids and digests', () => {
  it('isImageId', () => {
    expect(isImageId('a'.repeat(64))).toBe(true);
    expect(isImageId(D)).toBe(true);
    expect(isImageId('a'.repeat(63))).toBe(false);
    expect(isImageId(`sha256:${'A'.repeat(64)}`)).toBe(false);
    expect(isImageId('busybox')).toBe(false);
    expect(isImageId(`sha512:${'a'.repeat(64)}`)).toBe(false);
  });
  it('isDigest', () => {
    expect(isDigest(D)).toBe(true);
    expect(isDigest(`sha512:${'b'.repeat(128)}`)).toBe(true);
    expect(isDigest(`sha256:${'b'.repeat(63)}`)).toBe(false);
    expect(isDigest('sha256')).toBe(false);
  });
});
