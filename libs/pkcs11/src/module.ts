/**
 * One loaded PKCS#11 module per path per process, shared by every open token and reference
 * counted: C_Initialize on first use, C_Finalize when the last user closes. The user login is
 * per application and token in PKCS#11 (not per session), so it is counted here too: the first
 * open token logs in (one C_Login), the last one to close logs out.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import * as pkcs11js from 'pkcs11js';
import { Pkcs11Error, ckrOf, cryptoki, quote } from './errors';

export interface LoadedModule {
  readonly path: string;
  readonly pkcs11: pkcs11js.PKCS11;
  users: number;
  /** false when something else in this process had initialised the module first. */
  readonly initializedHere: boolean;
  /** slot key → how many open tokens rely on the login, and a digest of the PIN used. */
  readonly logins: Map<string, { users: number; pinDigest: Buffer }>;
}

const modules = new Map<string, LoadedModule>();

export function acquireModule(path: string): LoadedModule {
  const loaded = modules.get(path);
  if (loaded) {
    loaded.users++;
    return loaded;
  }
  if (!existsSync(path)) {
    throw new Pkcs11Error(
      'ERR_PKCS11_MODULE',
      `PKCS#11 module ${path} does not exist (PARTNER_PKCS11_MODULE or the URI's module-path; SoftHSM2's is /usr/lib/softhsm/libsofthsm2.so)`,
    );
  }
  const pkcs11 = new pkcs11js.PKCS11();
  try {
    pkcs11.load(path);
  } catch (err) {
    throw new Pkcs11Error(
      'ERR_PKCS11_MODULE',
      `${path} is not a loadable PKCS#11 module: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  let initializedHere = true;
  try {
    // OS locking: signatures run on libuv's thread pool (C_SignAsync), so the module must lock.
    pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch (err) {
    if (ckrOf(err) === 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
      initializedHere = false;
    } else {
      pkcs11.close();
      throw new Pkcs11Error(
        'ERR_PKCS11_MODULE',
        `PKCS#11 module ${path} failed to initialise: ${ckrOf(err) ?? (err as Error).message}`,
        ckrOf(err),
      );
    }
  }
  const module: LoadedModule = { path, pkcs11, users: 1, initializedHere, logins: new Map() };
  modules.set(path, module);
  return module;
}

export function releaseModule(module: LoadedModule): void {
  if (--module.users > 0) return;
  modules.delete(module.path);
  try {
    if (module.initializedHere) module.pkcs11.C_Finalize();
  } finally {
    module.pkcs11.close();
  }
}

const digest = (pin: string) => createHash('sha256').update(pin, 'utf8').digest();

/**
 * Logs the user in to the token of `slotKey` once per process: exactly one C_Login, never
 * retried. A second open token of the same process reuses that login if its PIN is the same.
 */
export function login(
  module: LoadedModule,
  session: Buffer,
  slotKey: string,
  pin: string,
  token: string,
): void {
  const existing = module.logins.get(slotKey);
  if (existing) {
    if (!timingSafeEqual(existing.pinDigest, digest(pin))) {
      throw new Pkcs11Error(
        'ERR_PKCS11_PIN_INCORRECT',
        `the PIN for token ${quote(token)} differs from the one this process is already logged in with (no login attempted)`,
      );
    }
    existing.users++;
    return;
  }
  cryptoki(`logging in to token ${quote(token)} (module ${module.path})`, () =>
    module.pkcs11.C_Login(session, pkcs11js.CKU_USER, pin),
  );
  module.logins.set(slotKey, { users: 1, pinDigest: digest(pin) });
}

export function logout(module: LoadedModule, session: Buffer, slotKey: string): void {
  const existing = module.logins.get(slotKey);
  if (!existing || --existing.users > 0) return;
  module.logins.delete(slotKey);
  try {
    module.pkcs11.C_Logout(session);
  } catch (err) {
    if (ckrOf(err) !== 'CKR_USER_NOT_LOGGED_IN') throw err;
  }
}
