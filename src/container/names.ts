import { randomBytes, randomInt } from 'node:crypto';

/** Docker's container name grammar (a leading `/` is accepted and dropped). */
const NAME_RE = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** True if `name` is a valid container name by Docker's rules. */
export function isValidName(name: string): boolean {
  return NAME_RE.test(name) && name.length <= 253;
}

/** Drops the leading slash Docker allows on names. */
export function normalizeName(name: string): string {
  return name.startsWith('/') ? name.slice(1) : name;
}

/** A new 64-hex container id, like Docker's. */
export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

// Docker's generator pairs an adjective with a notable scientist; ours keeps the
// shape (users recognise it) with a smaller list of its own.
const LEFT = [
  'brave', 'calm', 'clever', 'eager', 'fervent', 'gentle', 'happy', 'jolly', 'keen', 'lucid',
  'modest', 'nifty', 'quirky', 'sharp', 'stoic', 'tender', 'upbeat', 'vivid', 'wise', 'zealous',
];
const RIGHT = [
  'babbage', 'curie', 'dijkstra', 'euler', 'fermat', 'gauss', 'hopper', 'kepler', 'lamport',
  'lovelace', 'noether', 'pascal', 'ritchie', 'shannon', 'thompson', 'turing', 'wozniak', 'yalow',
];

/** A random `adjective_name` container name; the caller retries on a clash. */
export function randomName(attempt = 0): string {
  const base = `${LEFT[randomInt(LEFT.length)]}_${RIGHT[randomInt(RIGHT.length)]}`;
  return attempt > 0 ? `${base}${randomInt(10)}` : base;
}
