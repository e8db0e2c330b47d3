import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '@certflow/testing';
import { k6Version } from './k6';

const dir = tempDir('k6-version-');
afterAll(() => dir.remove());

/** A PATH holding only a `k6` that runs `body` (a shell script). */
function pathWithK6(name: string, body?: string): NodeJS.ProcessEnv {
  const bin = join(dir.path, name);
  mkdirSync(bin);
  if (body !== undefined) {
    writeFileSync(join(bin, 'k6'), `#!/bin/sh\n${body}\n`);
    chmodSync(join(bin, 'k6'), 0o755);
  }
  return { ...process.env, PATH: bin };
}

describe('k6Version', () => {
  it("reads k6's version line, says undefined without k6, and fails clearly for a broken k6", () => {
    expect(k6Version(pathWithK6('ok', 'echo "k6 v1.4.0 (go1.24)"; echo more'))).toBe('k6 v1.4.0 (go1.24)');
    expect(k6Version(pathWithK6('none'))).toBeUndefined();
    expect(() => k6Version(pathWithK6('broken', 'echo "cannot load" >&2; exit 3'))).toThrow(
      /a k6 is on the PATH but `k6 version` failed \(exit 3: cannot load\)/,
    );
  });
});
