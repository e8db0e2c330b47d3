import { mkdirSync, renameSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Writes a file so that readers see either the old content or the new, never half of it:
 * the data goes to a temporary file in the same directory, which is then renamed over the target.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode); // the umask may have narrowed or widened nothing, but be explicit
  renameSync(tmp, path);
}

/** Private keys are readable by their owner only. */
export function writePrivateKeyFile(path: string, pem: string): void {
  writeFileAtomic(path, pem, 0o600);
}
