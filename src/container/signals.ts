import { constants } from 'node:os';

const SIGNALS = constants.signals as Record<string, number>;

/** A signal number from a name (`SIGTERM`, `TERM`, `term`), a numeric string, or a number. @internal */
export function signalNumber(sig: string | number): number | undefined {
  if (typeof sig === 'number') return Number.isInteger(sig) && sig > 0 && sig < 65 ? sig : undefined;
  if (/^\d+$/.test(sig)) return signalNumber(Number(sig));
  const upper = sig.toUpperCase();
  return SIGNALS[upper.startsWith('SIG') ? upper : `SIG${upper}`];
}

/** `SIGKILL` for 9. @internal */
export function signalName(n: number): string {
  return Object.entries(SIGNALS).find(([, v]) => v === n)?.[0] ?? `SIG${n}`;
}
