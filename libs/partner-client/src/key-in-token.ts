/**
 * The certificate store's keys in a PKCS#11 token: opening the token a URI names, making a key
 * pair in it, signing with a key, and checking that a key belongs to a certificate. PKCS#11 errors become
 * CertificateStoreErrors with the same code.
 */
import { createHash, randomBytes } from 'node:crypto';
import { realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { KeySigner, ParsedCertificate, RsaKeySize } from '@certflow/certs';
import {
  formatPkcs11Uri,
  parsePkcs11Uri,
  Pkcs11Error,
  Pkcs11Token,
  resolvePkcs11Settings,
  type Pkcs11Uri,
} from '@certflow/pkcs11';
import { CertificateStoreError, type StoreReadOptions } from './credential';

/** A path with its symbolic links resolved; the part that does not exist yet is taken as given. */
function realPath(path: string): string {
  const absolute = resolve(path);
  try {
    return realpathSync(absolute);
  } catch (err) {
    const parent = dirname(absolute);
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === absolute) throw err;
    return join(realPath(parent), basename(absolute));
  }
}

/**
 * What binds a key certflow makes to the certificate directory it is made for: "certflow:" and
 * the SHA-256 (hex) of the directory's real path. Kept in the key's CKA_SUBJECT, which no one can
 * change afterwards (CKA_MODIFIABLE=false); certflow deletes a key only if it is this directory's.
 */
export function directoryBinding(directory: string): string {
  return `certflow:${createHash('sha256').update(realPath(directory)).digest('hex')}`;
}

/**
 * Why someone other than this user could put another directory at `directory`'s path, or
 * undefined when no one can: a directory on the way (itself or a parent) owned by another user
 * than this one or root, or writable by group or others without the sticky bit. A binding
 * names a path, so certflow deletes keys only where that path cannot be taken over (the rule
 * OpenSSH's StrictModes applies to a user's files).
 */
export function directoryReplaceableBy(directory: string): string | undefined {
  const uid = process.getuid?.();
  if (uid === undefined) return undefined; // not a POSIX system: no owners to compare
  for (let dir = realPath(directory); ; dir = dirname(dir)) {
    let stat;
    try {
      stat = statSync(dir);
    } catch {
      stat = undefined; // not made yet: its parent decides
    }
    if (stat) {
      if (stat.uid !== uid && stat.uid !== 0) return `${dir} belongs to another user (uid ${stat.uid})`;
      if ((stat.mode & 0o022) !== 0 && (stat.mode & 0o1000) === 0)
        return `${dir} is writable by ${stat.mode & 0o002 ? 'others' : 'its group'} (mode ${(stat.mode & 0o7777).toString(8)})`;
    }
    if (dirname(dir) === dir) return undefined;
  }
}

/** Runs a PKCS#11 operation; its errors become CertificateStoreErrors (same code) naming `where`. */
export function inToken<T>(where: string | undefined, operation: () => T): T {
  try {
    return operation();
  } catch (err) {
    if (err instanceof Pkcs11Error)
      throw new CertificateStoreError(err.code, where ? `${where}: ${err.message}` : err.message, where);
    throw err;
  }
}

/**
 * Opens the token a key reference names. Which module is loaded and where the PIN comes from is
 * configuration's alone (the `module-path` and `pin-source` of PARTNER_KEY_STORE,
 * PARTNER_PKCS11_MODULE, PARTNER_PKCS11_PIN), never a file's: a reference read from the
 * certificate directory (partner.key.p11, the pending key, the rotation journal) that names a
 * module or a PIN source is refused, since whoever can write the directory could otherwise make
 * the worker load any library with the PIN in its environment. Errors become
 * CertificateStoreErrors naming `where`.
 */
export function openToken(
  text: string,
  env: StoreReadOptions['env'],
  where?: string,
): { token: Pkcs11Token; uri: Pkcs11Uri } {
  return inToken(where, () => {
    const uri = parsePkcs11Uri(text);
    if (uri.modulePath !== undefined || uri.moduleName !== undefined || uri.pinSource !== undefined)
      throw new CertificateStoreError(
        'ERR_PKCS11_URI',
        `${where ?? 'the key reference'} names a PKCS#11 module or PIN source; certflow takes those from its configuration only (PARTNER_KEY_STORE, PARTNER_PKCS11_MODULE, PARTNER_PKCS11_PIN), never from a file: remove the part from "?" on`,
        where,
      );
    try {
      return { token: openConfigured(uri, env), uri };
    } catch (err) {
      if (
        err instanceof Pkcs11Error &&
        (err.code === 'ERR_PKCS11_MODULE' || err.code === 'ERR_PKCS11_PIN_MISSING')
      )
        throw new Pkcs11Error(
          err.code,
          `${err.message} (for a key kept in a token, every command needs its module and PIN from the environment: PARTNER_PKCS11_MODULE and PARTNER_PKCS11_PIN, or PARTNER_KEY_STORE with module-path and pin-source)`,
        );
      throw err;
    }
  });
}

/** Opens the token `uri` names with the module and PIN that the configuration gives. */
function openConfigured(uri: Pkcs11Uri, env: StoreReadOptions['env']): Pkcs11Token {
  const keyStore = env?.['PARTNER_KEY_STORE'];
  const configured = keyStore !== undefined ? parsePkcs11Uri(keyStore) : {};
  return Pkcs11Token.open(
    uri,
    resolvePkcs11Settings(
      {
        ...uri,
        ...(configured.modulePath !== undefined ? { modulePath: configured.modulePath } : {}),
        ...(configured.pinSource !== undefined ? { pinSource: configured.pinSource } : {}),
      },
      env ?? {},
    ),
  );
}

/** A key's URI as it is written to the certificate directory: without module or PIN source. */
export function storedKeyUri(uri: string): string {
  const { modulePath: _module, moduleName: _name, pinSource: _pin, ...rest } = parsePkcs11Uri(uri);
  return formatPkcs11Uri(rest);
}

/** Runs `use` with a signer over the key `uri` names, then closes the token. */
export function withTokenKey<T>(uri: string, env: StoreReadOptions['env'], use: (signer: KeySigner) => T): T {
  const { token, uri: parsed } = openToken(uri, env);
  try {
    return use(inToken(undefined, () => token.signer(parsed)));
  } finally {
    token.close();
  }
}

/**
 * Makes a key pair in the token `keyStore` names (labelled with its `object`, bound to the
 * certificate directory `directory`) and runs `use` with the key's URI and a signer over it, then
 * closes the token. If `use` fails, the key pair is deleted again: nothing changes.
 */
export async function withNewTokenKey<T>(
  keyStore: string,
  directory: string,
  env: StoreReadOptions['env'],
  bits: RsaKeySize,
  use: (keyUri: string, signer: KeySigner) => Promise<T>,
): Promise<T> {
  const binding = directoryBinding(directory);
  // The key store is configuration (--key-store, PARTNER_KEY_STORE): its own module and PIN source count.
  const uri = inToken(undefined, () => parsePkcs11Uri(keyStore));
  const token = inToken(undefined, () => Pkcs11Token.open(uri, resolvePkcs11Settings(uri, env ?? {})));
  let keyUri: string | undefined;
  try {
    keyUri = storedKeyUri(generateInToken(token, uri, bits, binding));
    return await use(keyUri, token.signer(parsePkcs11Uri(keyUri)));
  } catch (err) {
    if (keyUri !== undefined) token.deleteKeyPair(parsePkcs11Uri(keyUri), { binding });
    throw err;
  } finally {
    token.close();
  }
}

/** A key pair in the token the URI names, labelled with its `object`; returns the key's URI. */
function generateInToken(token: Pkcs11Token, uri: Pkcs11Uri, bits: RsaKeySize, binding: string): string {
  if (!uri.object)
    throw new CertificateStoreError(
      'ERR_PKCS11_URI',
      `the key store URI must name the new key with object=<label> (e.g. pkcs11:token=partner;object=partner-2026)`,
    );
  if (uri.type !== undefined && uri.type !== 'private')
    throw new CertificateStoreError(
      'ERR_PKCS11_URI',
      `the key store URI names type=${uri.type}; a key pair needs type=private or no type`,
    );
  return token.generateRsaKeyPair({ label: uri.object, id: uri.id ?? randomBytes(16), bits, binding });
}

/** ERR_CERT_KEY_MISMATCH (naming `where`) unless `signer`'s public key is the certificate's. */
export function assertSignerMatches(signer: KeySigner, certificate: ParsedCertificate, where: string): void {
  const spki = (k: ParsedCertificate['publicKey']) => k.export({ type: 'spki', format: 'der' });
  if (!spki(signer.publicKey).equals(spki(certificate.publicKey)))
    throw new CertificateStoreError(
      'ERR_CERT_KEY_MISMATCH',
      `the key ${signer.description} (${where}) does not belong to the certificate ${certificate.subject} (SHA-256 ${certificate.thumbprints.sha256Hex})`,
      where,
    );
}
