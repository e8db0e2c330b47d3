/** What a key's directory binding is worth: a path no other user can take over. */
import { chmodSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '@certflow/testing';
import { directoryBinding, directoryReplaceableBy } from './key-in-token';

describe('directoryReplaceableBy', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('accepts a directory under directories of this user (or root) that others cannot write, sticky ones included', () => {
    const own = join(dir.path, 'own', 'partner');
    mkdirSync(own, { recursive: true, mode: 0o700 });
    expect(directoryReplaceableBy(own)).toBeUndefined();
    const sticky = join(dir.path, 'shared');
    mkdirSync(sticky, { mode: 0o700 });
    chmodSync(sticky, 0o1777); // like /tmp: others may add entries, not rename ours
    mkdirSync(join(sticky, 'partner'), { mode: 0o700 });
    expect(directoryReplaceableBy(join(sticky, 'partner'))).toBeUndefined();
    // A path not made yet is judged by the parents that exist.
    expect(directoryReplaceableBy(join(own, 'not-yet', 'deeper'))).toBeUndefined();
  });

  it('refuses a directory whose parent others or its group may write (they could move it away and put another in its place)', () => {
    const open = join(dir.path, 'open');
    mkdirSync(join(open, 'partner'), { recursive: true, mode: 0o700 });
    chmodSync(open, 0o777);
    expect(directoryReplaceableBy(join(open, 'partner'))).toMatch(/open is writable by others \(mode 777\)/);
    chmodSync(open, 0o770);
    expect(directoryReplaceableBy(join(open, 'partner'))).toMatch(
      /open is writable by its group \(mode 770\)/,
    );
    chmodSync(open, 0o700);
    expect(directoryReplaceableBy(join(open, 'partner'))).toBeUndefined();
  });

  it('binds to the real path: a symlink to a directory has its binding, a copy elsewhere does not', () => {
    const real = join(dir.path, 'bound');
    mkdirSync(real, { mode: 0o700 });
    symlinkSync(real, join(dir.path, 'link'));
    expect(directoryBinding(join(dir.path, 'link'))).toBe(directoryBinding(real));
    expect(directoryBinding(join(dir.path, 'elsewhere'))).not.toBe(directoryBinding(real));
    expect(directoryBinding(real)).toMatch(/^certflow:[0-9a-f]{64}$/);
  });
});
