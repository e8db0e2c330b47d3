/**
 * Where the module and the PIN come from: the URI's module-path / pin-source, else the
 * environment (PARTNER_PKCS11_MODULE / PARTNER_PKCS11_PIN). Errors name the option to set.
 */
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { Pkcs11Error, hasControl, quote } from './errors';
import type { Pkcs11Uri } from './uri';

export interface Pkcs11Settings {
  modulePath: string;
  pin: string;
}

/** The longest PIN file read: a PIN is a line, not a document. */
export const PIN_FILE_MAX_BYTES = 1024;

/**
 * The path a pin-source names: an absolute path, or a local file: URI (file:/p, file:///p,
 * file://localhost/p). The value was percent-decoded once, with the rest of the PKCS#11 URI, and
 * is not decoded again; '?' and '#' (a file URI's query and fragment) and control characters
 * are refused rather than guessed at.
 */
function pinFilePath(pinSource: string): string {
  const shown = quote(pinSource);
  const bad = /[?#]/.exec(pinSource)?.[0] ?? (hasControl(pinSource) ? 'a control character' : undefined);
  if (bad) {
    throw new Pkcs11Error(
      'ERR_PKCS11_URI',
      `pin-source ${shown} contains ${bad.length === 1 ? `'${bad}'` : bad}, which a PIN file's path cannot hold unambiguously; move the PIN to a path without it`,
    );
  }
  let path = pinSource;
  const file = /^file:(?:\/\/([^/]*))?(\/.*)?$/i.exec(pinSource);
  if (file) {
    const [, host, rest] = file;
    if ((host !== undefined && host !== '' && host.toLowerCase() !== 'localhost') || rest === undefined) {
      throw new Pkcs11Error(
        'ERR_PKCS11_URI',
        `pin-source ${shown} is not a local file URI; write file:/absolute/path`,
      );
    }
    path = rest;
  }
  if (!isAbsolute(path)) {
    throw new Pkcs11Error(
      'ERR_PKCS11_URI',
      `pin-source ${shown} must be an absolute path or a file: URI (file:/absolute/path)`,
    );
  }
  return path;
}

/**
 * The first line of the PIN file. Symbolic links are followed: the checks below are on the file
 * the path leads to. It must be a regular file (not a device, FIFO or socket, which could block
 * or never end), at most PIN_FILE_MAX_BYTES long, and unreadable by group and others. It is
 * opened without blocking, checked on the open descriptor, and only then read.
 */
function readPinFile(pinSource: string): string {
  const path = pinFilePath(pinSource);
  const where = `the PIN file ${quote(path)} (pin-source)`;
  const refuse = (why: string) => new Pkcs11Error('ERR_PKCS11_PIN_MISSING', `${where} ${why}`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw refuse(`cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let bytes: Buffer;
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw refuse('is not a regular file');
    const mode = stat.mode & 0o777;
    if (mode & 0o077) {
      throw refuse(`is readable by others (mode ${mode.toString(8).padStart(4, '0')}); run chmod 600 on it`);
    }
    if (stat.size > PIN_FILE_MAX_BYTES) {
      throw refuse(
        `is ${stat.size} bytes long; a PIN file holds one line (at most ${PIN_FILE_MAX_BYTES} bytes)`,
      );
    }
    const buffer = Buffer.alloc(PIN_FILE_MAX_BYTES + 1);
    let length = 0;
    for (
      let n;
      length < buffer.length && (n = readSync(fd, buffer, length, buffer.length - length, null)) > 0;
    )
      length += n;
    if (length > PIN_FILE_MAX_BYTES) throw refuse(`grew beyond ${PIN_FILE_MAX_BYTES} bytes while being read`);
    bytes = buffer.subarray(0, length);
  } catch (err) {
    if (err instanceof Pkcs11Error) throw err;
    throw refuse(`cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  } finally {
    closeSync(fd);
  }
  const pin = bytes.toString('utf8').split(/\r?\n/, 1)[0]!;
  if (pin === '') throw refuse('has an empty first line');
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
  const from = uri.modulePath !== undefined ? "the URI's module-path" : 'PARTNER_PKCS11_MODULE';
  if (!isAbsolute(modulePath) || hasControl(modulePath)) {
    throw new Pkcs11Error(
      'ERR_PKCS11_MODULE',
      `${from} must be an absolute path without control characters (found ${quote(modulePath)})`,
    );
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
