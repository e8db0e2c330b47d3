import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SOFTHSM2_MODULE, createSoftHsmToken } from './softhsm';

describe('createSoftHsmToken', () => {
  it('initialises a token in its own directory, which remove() deletes', () => {
    const token = createSoftHsmToken({ label: 'fixture', pin: '2468' });
    try {
      expect(readFileSync(token.conf, 'utf8')).toContain(
        `directories.tokendir = ${join(token.directory, 'tokens')}`,
      );
      expect(token.env).toEqual({
        SOFTHSM2_CONF: token.conf,
        PARTNER_PKCS11_MODULE: SOFTHSM2_MODULE,
        PARTNER_PKCS11_PIN: '2468',
      });
      const slots = execFileSync('softhsm2-util', ['--show-slots'], {
        env: { ...process.env, ...token.env },
      }).toString();
      expect(slots).toMatch(/Label:\s+fixture\s/);
    } finally {
      token.remove();
    }
    expect(existsSync(token.directory)).toBe(false);
  });

  it('names the package to install when softhsm2-util is not on the PATH', () => {
    const path = process.env.PATH;
    process.env.PATH = '/srv/partner/empty-bin';
    try {
      expect(() => createSoftHsmToken()).toThrow(
        "softhsm2-util is not installed: install Debian's SoftHSM2 with `apt-get install softhsm2`",
      );
    } finally {
      process.env.PATH = path;
    }
  });
});
