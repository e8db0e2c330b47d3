import {
  closeSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Writes a file so that readers see either the old content or the new, never half of it, and
 * so that it survives a crash: the data goes to a new temporary file in the same directory
 * (created with `mode`, never wider), is flushed to disk, renamed over the target, and the
 * directory is flushed too. A process killed at any moment leaves the old file or the new one;
 * a failed write leaves the target untouched and no temporary file behind.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      fchmodSync(fd, mode); // explicit: the umask must neither widen nor narrow it
      let written = 0;
      while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // the original error is the one to report
    }
    throw err;
  }
  // The rename is done: the file is replaced. Flushing the directory entry is best effort, so a
  // completed write is never reported as failed.
  syncDirectory(dir);
}

/**
 * Flushes a directory's entries to disk (after a rename or a new entry in it). Best effort: some
 * file systems refuse fsync on a directory.
 */
export function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort, see above
  }
}

/** Private keys are readable by their owner only. */
export function writePrivateKeyFile(path: string, pem: string): void {
  writeFileAtomic(path, pem, 0o600);
}
