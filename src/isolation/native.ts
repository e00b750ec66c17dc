/**
 * Loads the C addon (build/Release/dockless.node) and hands it the error
 * classes it throws. The package root is found by walking up from this
 * module to the folder holding binding.gyp, so the same code works from
 * src/ (tsx, vitest) and from the bundled dist/.
 * @internal
 * @module
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { ContainerStartError, SystemError, UnsupportedError } from '../errors.js';
import type { NativeAddon } from './native-types.js';

function packageRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'binding.gyp')) && existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) {
      throw new UnsupportedError(`dockless: cannot find the package root (binding.gyp) above ${start}`);
    }
  }
}

function load(): NativeAddon {
  const root = packageRoot();
  const file = join(root, 'build', 'Release', 'dockless.node');
  const require = createRequire(import.meta.url);
  let addon: NativeAddon;
  try {
    addon = require(file) as NativeAddon;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new UnsupportedError(
      `dockless: cannot load the native addon ${file} (build it with \`npm run build:native\`): ${reason}`,
    );
  }
  addon.init({ SystemError, ContainerStartError });
  return addon;
}

/** The native addon, loaded and initialized once per thread. */
export const native: NativeAddon = load();
