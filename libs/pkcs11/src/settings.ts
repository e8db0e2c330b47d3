/**
 * Where the module and the PIN come from: the URI's module-path / pin-source, else the
 * environment (PARTNER_PKCS11_MODULE / PARTNER_PKCS11_PIN). Errors name the option to set.
 */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pkcs11Error } from './errors';
import type { Pkcs11Uri } from './uri';

export interface Pkcs11Settings {
  modulePath: string;
  pin: string;
}

function pinFilePath(pinSource: string): string {
  let path = pinSource;
  if (pinSource.startsWith('file:')) {
    try {
      path = fileURLToPath(pinSource);
    } catch (err) {
      throw new Pkcs11Error(
        'ERR_PKCS11_URI',
        `pin-source '${pinSource}' is not a file URI (${(err as Error).message}); write file:/absolute/path`,
      );
    }
  }
  if (!isAbsolute(path)) {
    throw new Pkcs11Error(
      'ERR_PKCS11_URI',
      `pin-source '${pinSource}' must be an absolute path or a file: URI (file:/absolute/path)`,
    );
  }
  return path;
}

/** The first line of the PIN file, refused when the file is readable by group or others. */
function readPinFile(pinSource: string): string {
  const path = pinFilePath(pinSource);
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode & 0o777;
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Pkcs11Error(
      'ERR_PKCS11_PIN_MISSING',
      `cannot read the PIN file ${path} named by pin-source: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  if (mode & 0o077) {
    throw new Pkcs11Error(
      'ERR_PKCS11_PIN_MISSING',
      `the PIN file ${path} (pin-source) is readable by others (mode ${mode.toString(8).padStart(4, '0')}); run chmod 600 on it`,
    );
  }
  const pin = text.split(/\r?\n/, 1)[0]!;
  if (pin === '') {
    throw new Pkcs11Error(
      'ERR_PKCS11_PIN_MISSING',
      `the PIN file ${path} (pin-source) has an empty first line`,
    );
  }
  return pin;
}

export function resolvePkcs11Settings(
  uri: Pkcs11Uri,
  env: Readonly<Record<string, string | undefined>>,
): Pkcs11Settings {
  const modulePath = uri.modulePath ?? (env.PARTNER_PKCS11_MODULE || undefined);
  if (modulePath === undefined) {
    const byName = uri.moduleName
      ? ` (module-name=${uri.moduleName} is not looked up: give the module's full path)`
      : '';
    throw new Pkcs11Error(
      'ERR_PKCS11_MODULE',
      `no PKCS#11 module configured${byName}: set PARTNER_PKCS11_MODULE or the URI's module-path to the module's absolute path (e.g. /usr/lib/softhsm/libsofthsm2.so)`,
    );
  }
  if (!isAbsolute(modulePath)) {
    const from = uri.modulePath !== undefined ? "the URI's module-path" : 'PARTNER_PKCS11_MODULE';
    throw new Pkcs11Error('ERR_PKCS11_MODULE', `${from} must be an absolute path (found '${modulePath}')`);
  }
  let pin: string | undefined;
  if (uri.pinSource !== undefined) pin = readPinFile(uri.pinSource);
  else pin = env.PARTNER_PKCS11_PIN || undefined;
  if (pin === undefined) {
    throw new Pkcs11Error(
      'ERR_PKCS11_PIN_MISSING',
      "no PIN for the PKCS#11 token: set PARTNER_PKCS11_PIN, or the URI's pin-source to a file (mode 0600) holding the PIN",
    );
  }
  return { modulePath, pin };
}
