/**
 * A fresh SoftHSM2 token for a test, in its own temporary directory: a softhsm2.conf whose
 * token directory is inside it, and one token initialised with `softhsm2-util --init-token`.
 * SoftHSM2 reads SOFTHSM2_CONF when the module is initialised, so a test sets
 * `process.env.SOFTHSM2_CONF = token.conf` (or passes `token.env` to a child) before opening.
 * A missing SoftHSM2 is an error naming the package, never a skipped test.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where Debian's softhsm2 package installs the PKCS#11 module. */
export const SOFTHSM2_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftHsmToken {
  /** The softhsm2.conf path, for SOFTHSM2_CONF. */
  conf: string;
  modulePath: string;
  label: string;
  pin: string;
  soPin: string;
  directory: string;
  /** SOFTHSM2_CONF, PARTNER_PKCS11_MODULE and PARTNER_PKCS11_PIN for this token. */
  env: Record<string, string>;
  /** Deletes the directory and the token in it. */
  remove(): void;
}

const INSTALL = "install Debian's SoftHSM2 with `apt-get install softhsm2`";

export function createSoftHsmToken(opts: { label?: string; pin?: string } = {}): SoftHsmToken {
  const label = opts.label ?? 'certflow-test';
  const pin = opts.pin ?? '123456';
  const soPin = '12345678';
  if (!existsSync(SOFTHSM2_MODULE))
    throw new Error(`the SoftHSM2 module ${SOFTHSM2_MODULE} is missing: ${INSTALL}`);
  const directory = mkdtempSync(join(tmpdir(), 'softhsm-'));
  const remove = () => rmSync(directory, { recursive: true, force: true });
  try {
    const conf = join(directory, 'softhsm2.conf');
    mkdirSync(join(directory, 'tokens'), { mode: 0o700 });
    writeFileSync(
      conf,
      `directories.tokendir = ${join(directory, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`,
      { mode: 0o600 },
    );
    const env = { SOFTHSM2_CONF: conf, PARTNER_PKCS11_MODULE: SOFTHSM2_MODULE, PARTNER_PKCS11_PIN: pin };
    try {
      execFileSync(
        'softhsm2-util',
        ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', soPin],
        { env: { ...process.env, SOFTHSM2_CONF: conf }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
      if (e.code === 'ENOENT') throw new Error(`softhsm2-util is not installed: ${INSTALL}`);
      throw new Error(`softhsm2-util --init-token failed: ${e.stderr?.toString().trim() || e.message}`);
    }
    return { conf, modulePath: SOFTHSM2_MODULE, label, pin, soPin, directory, env, remove };
  } catch (err) {
    remove();
    throw err;
  }
}
