import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InvalidOptionError } from '../errors.js';

/** A resolved user: what the process runs as, and the HOME Docker derives. @internal */
export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

/**
 * Reads a small file of the image (e.g. `etc/passwd`) straight from its layer
 * directories, topmost first, without mounting anything. Image content is
 * attacker-controlled, so no component may be a symlink (we would have to
 * resolve it inside the root; refusing is safer for these few files) and the
 * file is opened with O_NOFOLLOW. A whiteout in a higher layer hides the file.
 * @internal
 */
export function readImageFile(layerDirs: string[], relPath: string, maxBytes = 1 << 20): string | undefined {
  const parts = relPath.split('/').filter(Boolean);
  for (const dir of layerDirs) {
    let cur = dir;
    let blocked = false;
    for (let i = 0; i < parts.length; i++) {
      cur = join(cur, parts[i]!);
      let st;
      try {
        st = lstatSync(cur);
      } catch {
        blocked = true; // not in this layer: look lower
        break;
      }
      if (st.isCharacterDevice() && st.rdev === 0) return undefined; // whiteout
      if (st.isSymbolicLink()) return undefined;
      if (i < parts.length - 1 && !st.isDirectory()) return undefined;
    }
    if (blocked) continue;
    const fd = openSync(cur, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const st = fstatSync(fd);
      if (!st.isFile() || st.size > maxBytes) return undefined;
      return readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  }
  return undefined;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function parsePasswd(text: string | undefined): PasswdEntry[] {
  if (!text) return [];
  return text.split('\n').flatMap((line) => {
    const f = line.split(':');
    if (f.length < 7 || line.startsWith('#')) return [];
    return [{ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! }];
  });
}

function parseGroup(text: string | undefined): { name: string; gid: number; members: string[] }[] {
  if (!text) return [];
  return text.split('\n').flatMap((line) => {
    const f = line.split(':');
    if (f.length < 4 || line.startsWith('#')) return [];
    return [{ name: f[0]!, gid: Number(f[2]), members: f[3]!.split(',').filter(Boolean) }];
  });
}

const isId = (s: string) => /^\d+$/.test(s);

/**
 * Resolves Docker's `user[:group]` against the image's passwd and group files,
 * by Docker's rules: numeric ids need no entry; names must exist; the primary
 * group comes from passwd unless given; supplementary groups are those listing
 * the user by name.
 * @internal
 */
export function resolveUser(spec: string, layerDirs: string[]): ResolvedUser {
  const [userPart = 'root', groupPart] = (spec || 'root').split(':');
  const passwd = parsePasswd(readImageFile(layerDirs, 'etc/passwd'));
  const groups = parseGroup(readImageFile(layerDirs, 'etc/group'));
  const entry = isId(userPart) ? passwd.find((p) => p.uid === Number(userPart)) : passwd.find((p) => p.name === userPart);
  if (!entry && !isId(userPart)) {
    throw new InvalidOptionError('user', `unable to find user ${userPart}: no matching entries in passwd file`);
  }
  const uid = entry ? entry.uid : Number(userPart);
  let gid = entry ? entry.gid : 0;
  if (groupPart !== undefined) {
    if (isId(groupPart)) gid = Number(groupPart);
    else {
      const g = groups.find((x) => x.name === groupPart);
      if (!g) throw new InvalidOptionError('user', `unable to find group ${groupPart}: no matching entries in group file`);
      gid = g.gid;
    }
  }
  if (uid > 0xfffffffe || gid > 0xfffffffe) throw new InvalidOptionError('user', 'uid and gid must be below 2^32-1');
  const additionalGids = entry ? groups.filter((g) => g.members.includes(entry.name) && g.gid !== gid).map((g) => g.gid) : [];
  return { uid, gid, additionalGids, home: entry?.home || '/' };
}
