/**
 * What the rotation specs against a token share: a SoftHSM2 token, the provisioned emulator (its
 * CA written to `dir`/ca.pem) and the environment naming the token's module and PIN, set up once
 * for the enclosing describe block and removed after it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { Pkcs11Token } from '@certflow/pkcs11';
import type { GraphClient, RunningEmulator } from '@certflow/entra-emulator';
import { createSoftHsmToken, tempDir, type SoftHsmToken } from '@certflow/testing';
import { startProvisionedEmulator } from './emulator.test-helpers';

export interface TokenAndEmulator {
  dir: ReturnType<typeof tempDir>;
  emulator: RunningEmulator;
  /** An admin Graph client. */
  admin: GraphClient;
  hsm: SoftHsmToken;
  /** PARTNER_PKCS11_MODULE and PARTNER_PKCS11_PIN for the token. */
  env: Record<string, string>;
  /** Opens the token for one use and closes it again. */
  inToken<T>(use: (token: Pkcs11Token) => T): T;
}

/** Registers the set-up and clean-up hooks; the fields are filled in before the first test runs. */
export function useTokenAndEmulator(
  label: string,
  options: { name: string; apiIdentifierUri: string },
): TokenAndEmulator {
  const fx = {
    dir: tempDir(),
    inToken<T>(use: (token: Pkcs11Token) => T): T {
      const token = Pkcs11Token.open({ token: label }, { modulePath: fx.hsm.modulePath, pin: fx.hsm.pin });
      try {
        return use(token);
      } finally {
        token.close();
      }
    },
  } as TokenAndEmulator;

  beforeAll(async () => {
    fx.hsm = createSoftHsmToken({ label });
    // SoftHSM2 reads its configuration from the process environment when the module starts.
    process.env['SOFTHSM2_CONF'] = fx.hsm.conf;
    fx.env = { PARTNER_PKCS11_MODULE: fx.hsm.modulePath, PARTNER_PKCS11_PIN: fx.hsm.pin };
    const started = await startProvisionedEmulator(fx.dir.path, options);
    fx.emulator = started.emulator;
    fx.admin = started.graph;
    writeFileSync(join(fx.dir.path, 'ca.pem'), started.caPem);
  }, 120_000);

  afterAll(async () => {
    fx.admin?.close();
    await fx.emulator?.close();
    fx.hsm?.remove();
    fx.dir.remove();
  });

  return fx;
}
