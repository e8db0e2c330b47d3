/**
 * Durable atomic file writes for the state directory: the data goes to a new temporary file in
 * the same directory, is flushed to disk (fsync), renamed over the target, and the directory is
 * flushed too. A process killed at any moment (`kill -9`) leaves the old file or the new one,
 * never half of one; a crash of the machine leaves no empty file behind a completed rename.
 */
import { closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

export function writeFileDurably(path: string, data: string, mode: number): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const bytes = Buffer.from(data, 'utf8');
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      fchmodSync(fd, mode); // explicit: the umask must not widen or narrow it
      let written = 0;
      while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  const dirFd = openSync(dir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
