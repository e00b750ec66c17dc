import { z } from 'zod';
import { InvalidOptionError } from './errors.js';

/**
 * Parses `input` with a zod schema and turns the first failure into an
 * {@link InvalidOptionError} that names the option by its dotted path, so a
 * caller sees `invalid option limits.memory: …` rather than a zod dump.
 * @internal
 */
export function parseOptions<S extends z.ZodType>(schema: S, input: unknown, prefix = ''): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  let path = issue.path.map(String).join('.');
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as { keys: string[] }).keys;
    path = [path, keys[0]].filter(Boolean).join('.');
    message = `unknown option${keys.length > 1 ? 's' : ''} ${keys.map((k) => JSON.stringify(k)).join(', ')}`;
  }
  throw new InvalidOptionError([prefix, path].filter(Boolean).join('.') || '(options)', message);
}
