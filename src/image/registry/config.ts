/**
 * Where registry credentials and transport settings come from: Docker's client
 * config (`~/.docker/config.json`, or `$DOCKER_CONFIG/config.json`) with its
 * `auths`, `credHelpers` and `credsStore`, and Docker's rules for which
 * registries may be spoken to over plain HTTP.
 * @module
 */

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidOptionError } from '../../errors.js';

/** Credentials for one registry. */
export interface RegistryCredentials {
  /** User name for Basic auth and for token requests. */
  username?: string;
  /** Password (or personal access token) for `username`. */
  password?: string;
  /**
   * An OAuth2 refresh token (`identitytoken` in config.json, what `docker login`
   * stores for some registries); exchanged at the token server for access tokens.
   */
  identityToken?: string;
  /** A bearer token sent to the registry as is (`registrytoken` in config.json). */
  registryToken?: string;
}

/** The part of Docker's config.json that concerns registries. */
export interface DockerConfigFile {
  /** Per-registry stored credentials, keyed by host or URL (`https://index.docker.io/v1/` for Docker Hub). */
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string; registrytoken?: string }>;
  /** Per-registry credential helper suffixes: `"ghcr.io": "pass"` runs `docker-credential-pass`. */
  credHelpers?: Record<string, string>;
  /** Default credential helper suffix for every registry. */
  credsStore?: string;
}

/** The key Docker uses for Docker Hub in config.json and credential helpers. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';
const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * Path of Docker's client config: `$DOCKER_CONFIG/config.json` when
 * DOCKER_CONFIG is set, else `~/.docker/config.json`.
 */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  const dir = env.DOCKER_CONFIG || join(env.HOME || homedir(), '.docker');
  return join(dir, 'config.json');
}

/**
 * Read Docker's client config. A missing file is an empty config.
 * @throws InvalidOptionError (option `dockerConfigPath`) when the file is not valid JSON.
 */
export function loadDockerConfig(path: string = dockerConfigPath()): DockerConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new InvalidOptionError('dockerConfigPath', `cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    return typeof parsed === 'object' && parsed !== null ? (parsed as DockerConfigFile) : {};
  } catch (e) {
    throw new InvalidOptionError('dockerConfigPath', `${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/**
 * The host part of an `auths` key, as Docker's `ConvertToHostname` does it:
 * `https://localhost:5000/v2/` → `localhost:5000`.
 */
export function authKeyHost(key: string): string {
  let host = key.replace(/^https?:\/\//i, '');
  const slash = host.indexOf('/');
  if (slash !== -1) host = host.slice(0, slash);
  return host.toLowerCase();
}

function isDockerHub(registry: string): boolean {
  return DOCKER_HUB_NAMES.has(registry.toLowerCase());
}

/**
 * Credentials for `registry` from a Docker config: a credential helper
 * (`credHelpers`, then `credsStore`) when one is configured, else the `auths`
 * entry (base64 `auth` = `user:password`, or `username`/`password`,
 * `identitytoken`, `registrytoken`).
 * @returns `undefined` when the config has nothing for this registry.
 */
export async function credentialsFromDockerConfig(
  config: DockerConfigFile,
  registry: string,
): Promise<RegistryCredentials | undefined> {
  const hub = isDockerHub(registry);
  const serverUrl = hub ? DOCKER_HUB_AUTH_KEY : registry;
  const helper = findHelper(config.credHelpers, registry, hub) ?? config.credsStore;
  if (helper) {
    const fromHelper = await runCredentialHelper(helper, serverUrl);
    if (fromHelper) return fromHelper;
  }
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    const host = authKeyHost(key);
    if (!(hub ? isDockerHub(host) : host === registry.toLowerCase())) continue;
    if (!entry || typeof entry !== 'object') continue;
    const creds: RegistryCredentials = {};
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon === -1) {
        throw new InvalidOptionError('dockerConfigPath', `the auth entry for ${key} is not base64 of "user:password"`);
      }
      creds.username = decoded.slice(0, colon);
      creds.password = decoded.slice(colon + 1);
    }
    if (entry.username) creds.username = entry.username;
    if (entry.password) creds.password = entry.password;
    if (entry.identitytoken) creds.identityToken = entry.identitytoken;
    if (entry.registrytoken) creds.registryToken = entry.registrytoken;
    if (Object.keys(creds).length) return creds;
  }
  return undefined;
}

function findHelper(helpers: Record<string, string> | undefined, registry: string, hub: boolean): string | undefined {
  if (!helpers) return undefined;
  for (const [key, helper] of Object.entries(helpers)) {
    const host = authKeyHost(key);
    if (hub ? isDockerHub(host) : host === registry.toLowerCase()) return helper;
  }
  return undefined;
}

/**
 * Ask `docker-credential-<helper> get` for the credentials of `serverUrl`
 * (the docker-credential-helpers protocol: URL on stdin, JSON on stdout).
 * A helper that has nothing for the server answers "credentials not found".
 */
async function runCredentialHelper(helper: string, serverUrl: string): Promise<RegistryCredentials | undefined> {
  if (!/^[A-Za-z0-9_.-]+$/.test(helper)) {
    throw new InvalidOptionError('dockerConfigPath', `invalid credential helper name ${JSON.stringify(helper)}`);
  }
  const program = `docker-credential-${helper}`;
  const output = await new Promise<string>((resolve, reject) => {
    const child = execFile(program, ['get'], { timeout: 30_000, maxBuffer: 1024 * 1024 }, (err, stdout) => {
      if (!err) return resolve(stdout);
      if (/credentials not found/i.test(stdout)) return resolve('');
      const code = (err as NodeJS.ErrnoException).code;
      reject(new InvalidOptionError(
        'dockerConfigPath',
        code === 'ENOENT'
          ? `credential helper ${program} is configured but not installed`
          : `credential helper ${program} failed for ${serverUrl}: ${stdout.trim() || err.message}`,
      ));
    });
    child.stdin?.end(serverUrl);
  });
  if (!output.trim()) return undefined;
  let answer: { Username?: string; Secret?: string };
  try {
    answer = JSON.parse(output) as { Username?: string; Secret?: string };
  } catch {
    throw new InvalidOptionError('dockerConfigPath', `credential helper ${program} printed something that is not JSON`);
  }
  if (!answer.Secret) return undefined;
  // Docker's convention: a helper returns an identity token with the user name "<token>".
  if (answer.Username === '<token>') return { identityToken: answer.Secret };
  return { username: answer.Username ?? '', password: answer.Secret };
}

/**
 * Docker's rule for plain-HTTP registries: a registry is insecure when its
 * host is in one of the configured entries (a `host[:port]` or a CIDR such as
 * `10.0.0.0/8`), or is a loopback address (127.0.0.0/8, ::1, `localhost`),
 * which Docker treats as insecure by default. Host names other than
 * `localhost` are not resolved: name them in the list to make them insecure.
 */
export class InsecureRegistries {
  private readonly names = new Set<string>();
  private readonly blocks = new BlockList();

  /**
   * @param entries `host`, `host:port` or CIDR entries, like daemon.json's `insecure-registries`.
   * @throws InvalidOptionError (option `insecureRegistries`) for malformed entries.
   */
  constructor(entries: readonly string[] = []) {
    this.blocks.addSubnet('127.0.0.0', 8, 'ipv4');
    this.blocks.addAddress('::1', 'ipv6');
    for (const raw of entries) {
      const entry = raw.replace(/^https?:\/\//i, '').replace(/\/+$/, '').toLowerCase();
      const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
      if (cidr) {
        const family = isIP(cidr[1]!);
        const prefix = Number(cidr[2]);
        if (!family || prefix > (family === 4 ? 32 : 128)) {
          throw new InvalidOptionError('insecureRegistries', `${JSON.stringify(raw)} is not a valid CIDR`);
        }
        this.blocks.addSubnet(cidr[1]!, prefix, family === 4 ? 'ipv4' : 'ipv6');
      } else if (/^[a-z0-9.:[\]-]+$/.test(entry) && entry.length > 0) {
        this.names.add(entry);
      } else {
        throw new InvalidOptionError('insecureRegistries', `${JSON.stringify(raw)} is not a host, host:port or CIDR`);
      }
    }
  }

  /** True when `registry` (`host` or `host:port`) may be used over plain HTTP. */
  has(registry: string): boolean {
    const lower = registry.toLowerCase();
    if (this.names.has(lower)) return true;
    const host = hostOf(lower);
    if (this.names.has(host) || host === 'localhost') return true;
    const family = isIP(host);
    return family !== 0 && this.blocks.check(host, family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** The host of `host[:port]`, without brackets for IPv6 (`[::1]:5000` → `::1`). */
export function hostOf(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(1, registry.indexOf(']'));
  const colon = registry.lastIndexOf(':');
  return colon === -1 || registry.indexOf(':') !== colon ? registry : registry.slice(0, colon);
}
