/**
 * Docker's `--change` instructions (`docker import -c`, `docker commit -c`):
 * Dockerfile lines that edit an image config. Quoting, escapes and `$VAR`
 * expansion follow the Dockerfile rules closely enough for the instructions
 * that are allowed here.
 * @module
 */

import { posix } from 'node:path';
import { InvalidOptionError } from '../errors.js';
import type { ImageConfig } from './oci.js';

/** The instructions `changes` accepts. */
export const CHANGE_INSTRUCTIONS = ['CMD', 'ENTRYPOINT', 'ENV', 'WORKDIR', 'USER', 'EXPOSE', 'LABEL', 'VOLUME', 'STOPSIGNAL'] as const;

/**
 * Applies `changes` in order to a copy of `config`.
 * @throws {@link InvalidOptionError} (option `changes[i]`) for an unknown
 *   instruction or a malformed argument.
 */
export function applyChanges(config: ImageConfig, changes: readonly string[]): ImageConfig {
  const out: ImageConfig = structuredClone(config);
  let cmdSet = false;
  changes.forEach((line, i) => {
    const option = `changes[${i}]`;
    const fail = (msg: string): never => {
      throw new InvalidOptionError(option, msg);
    };
    if (typeof line !== 'string') fail('must be a string');
    const m = /^\s*([A-Za-z]+)(?:\s+([\s\S]*?))?\s*$/.exec(line);
    if (!m) return fail(`cannot parse ${JSON.stringify(line)}`);
    const instruction = m[1]!.toUpperCase();
    const rest = m[2] ?? '';
    if (!(CHANGE_INSTRUCTIONS as readonly string[]).includes(instruction)) {
      fail(`${instruction} is not a valid change instruction (one of ${CHANGE_INSTRUCTIONS.join(', ')})`);
    }
    const env = envMap(out.Env);
    const words = (s: string) => {
      try {
        return splitWords(s, env);
      } catch (err) {
        return fail((err as Error).message);
      }
    };
    const one = (what: string) => {
      const w = words(rest);
      if (w.length !== 1) fail(`${instruction} takes one ${what}`);
      return w[0]!;
    };

    switch (instruction) {
      case 'CMD':
      case 'ENTRYPOINT': {
        const json = jsonArray(rest);
        const argv = json ?? (rest === '' ? [] : [...(out.Shell?.length ? out.Shell : ['/bin/sh', '-c']), rest]);
        if (instruction === 'CMD') {
          out.Cmd = argv;
          cmdSet = true;
        } else {
          out.Entrypoint = argv;
          if (!cmdSet) out.Cmd = null; // as in a Dockerfile: ENTRYPOINT drops an inherited CMD
        }
        break;
      }
      case 'ENV':
      case 'LABEL': {
        const pairs = keyValues(rest, env, instruction, fail);
        if (instruction === 'ENV') {
          const list = [...(out.Env ?? [])];
          for (const [k, v] of pairs) {
            const at = list.findIndex((e) => e === k || e.startsWith(`${k}=`));
            if (at === -1) list.push(`${k}=${v}`);
            else list[at] = `${k}=${v}`;
            env.set(k, v);
          }
          out.Env = list;
        } else {
          out.Labels = { ...(out.Labels ?? {}) };
          for (const [k, v] of pairs) out.Labels[k] = v;
        }
        break;
      }
      case 'WORKDIR': {
        const dir = one('path');
        out.WorkingDir = posix.resolve(out.WorkingDir || '/', dir);
        break;
      }
      case 'USER':
        out.User = one('user');
        break;
      case 'STOPSIGNAL': {
        const sig = one('signal');
        if (!/^(SIG)?[A-Z0-9+-]+$|^[0-9]+$/i.test(sig)) fail(`invalid signal ${JSON.stringify(sig)}`);
        out.StopSignal = sig;
        break;
      }
      case 'EXPOSE': {
        const ports = words(rest);
        if (ports.length === 0) fail('EXPOSE needs at least one port');
        out.ExposedPorts = { ...(out.ExposedPorts ?? {}) };
        for (const p of ports) for (const key of expandPort(p, fail)) out.ExposedPorts[key] = {};
        break;
      }
      case 'VOLUME': {
        const vols = jsonArray(rest) ?? words(rest);
        if (vols.length === 0 || vols.some((v) => v.trim() === '')) fail('VOLUME needs non-empty paths');
        out.Volumes = { ...(out.Volumes ?? {}) };
        for (const v of vols) out.Volumes[v] = {};
        break;
      }
    }
  });
  return out;
}

function envMap(env: ImageConfig['Env']): Map<string, string> {
  const map = new Map<string, string>();
  for (const e of env ?? []) {
    const eq = e.indexOf('=');
    if (eq === -1) map.set(e, '');
    else map.set(e.slice(0, eq), e.slice(eq + 1));
  }
  return map;
}

/** The exec (JSON) form, when `s` is a JSON array of strings; else null (shell form, as Docker falls back). */
function jsonArray(s: string): string[] | null {
  if (!s.startsWith('[')) return null;
  try {
    const v: unknown = JSON.parse(s);
    return Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : null;
  } catch {
    return null;
  }
}

/** `k=v k2="v 2"` pairs, or the legacy `KEY value with spaces` form. */
function keyValues(rest: string, env: Map<string, string>, instruction: string, fail: (m: string) => never): Array<[string, string]> {
  if (rest.trim() === '') fail(`${instruction} needs at least one key`);
  const first = /^([^\s=]+)(\s+|=|$)/.exec(rest);
  if (first && first[2] !== '=') {
    // Legacy form: one key, the rest of the line is the value.
    const value = rest.slice(first[0].length);
    if (value === '') fail(`${instruction} ${first[1]} needs a value`);
    return [[first[1]!, splitWords(value, env, { whole: true })[0] ?? '']];
  }
  const pairs: Array<[string, string]> = [];
  for (const word of splitWords(rest, env, { keepKeys: true })) {
    const eq = word.indexOf('=');
    if (eq <= 0) fail(`${JSON.stringify(word)} is not KEY=value`);
    pairs.push([word.slice(0, eq), word.slice(eq + 1)]);
  }
  return pairs;
}

/**
 * Splits on unquoted whitespace; removes quotes; applies backslash escapes and
 * `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}` expansion (not inside single quotes).
 * With `keepKeys`, nothing before the first `=` of a word is expanded; with
 * `whole`, whitespace does not split (one word comes back).
 */
export function splitWords(s: string, env: Map<string, string>, opts: { keepKeys?: boolean; whole?: boolean } = {}): string[] {
  const { keepKeys = false, whole = false } = opts;
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let sawEq = false;
  let i = 0;
  const expand = (): string => {
    // at s[i] === '$'
    const next = s[i + 1];
    if (next === '{') {
      const close = s.indexOf('}', i + 2);
      if (close === -1) throw new Error(`missing '}' in ${JSON.stringify(s)}`);
      const inner = s.slice(i + 2, close);
      i = close + 1;
      const m = /^([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([\s\S]*))?$/.exec(inner);
      if (!m) throw new Error(`bad substitution \${${inner}}`);
      const value = env.get(m[1]!);
      if (m[2] === '-') return value ? value : m[3]!;
      if (m[2] === '+') return value ? m[3]! : '';
      return value ?? '';
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(i + 1));
    if (!m) {
      i++;
      return '$';
    }
    i += 1 + m[0].length;
    return env.get(m[0]) ?? '';
  };
  const mayExpand = () => !keepKeys || sawEq;
  while (i < s.length) {
    const c = s[i]!;
    if (!whole && /\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      sawEq = false;
      i++;
      continue;
    }
    inWord = true;
    if (c === '\\') {
      if (i + 1 < s.length) cur += s[i + 1];
      i += 2;
    } else if (c === "'") {
      const close = s.indexOf("'", i + 1);
      if (close === -1) throw new Error(`unterminated single quote in ${JSON.stringify(s)}`);
      cur += s.slice(i + 1, close);
      i = close + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= s.length) throw new Error(`unterminated double quote in ${JSON.stringify(s)}`);
        const d = s[i]!;
        if (d === '"') {
          i++;
          break;
        }
        if (d === '\\' && i + 1 < s.length && '"\\$'.includes(s[i + 1]!)) {
          cur += s[i + 1];
          i += 2;
        } else if (d === '$' && mayExpand()) {
          cur += expand();
        } else {
          cur += d;
          i++;
        }
      }
    } else if (c === '$' && mayExpand()) {
      cur += expand();
    } else {
      if (c === '=') sawEq = true;
      cur += c;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** `80`, `80/udp`, `8000-8002/tcp` → `["80/tcp"]`, … */
function expandPort(spec: string, fail: (m: string) => never): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(spec);
  if (!m) return fail(`invalid port ${JSON.stringify(spec)}`);
  const start = Number(m[1]);
  const end = m[2] !== undefined ? Number(m[2]) : start;
  const proto = (m[3] ?? 'tcp').toLowerCase();
  if (start < 1 || end > 65535 || end < start) fail(`invalid port range ${JSON.stringify(spec)}`);
  const out: string[] = [];
  for (let p = start; p <= end; p++) out.push(`${p}/${proto}`);
  return out;
}
