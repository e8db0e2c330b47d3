/**
 * Validation of Graph `keyCredential` uploads: only a public X.509 certificate, as base64
 * DER, may be registered. Anything that holds (or may hold) a private key is refused, so a
 * partner's key never ends up in the directory by mistake.
 */
import { createPrivateKey } from 'node:crypto';
import forge from 'node-forge';
import { CertificateError, parseCertificate, type ParsedCertificate } from '@certflow/certs';
import { graphErrors } from './graph-errors';
import { isGuid } from '@certflow/claims';
import { newGuid } from './ids';
import type { StoredKeyCredential } from './state-store';

const ALLOWED = new Set([
  'keyId',
  'type',
  'usage',
  'key',
  'displayName',
  'customKeyIdentifier',
  'startDateTime',
  'endDateTime',
  '@odata.type',
]);
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes a stored or uploaded `key` into the certificate it holds (throws if it is anything else). */
export function certificateOfKey(keyBase64: string): ParsedCertificate {
  return parseCertificate(Buffer.from(keyBase64, 'base64'));
}

/**
 * The new `keyCredentials` collection for a PATCH (or POST): Graph replaces the whole
 * collection. An item that names the `keyId` of an existing credential with `key: null`
 * keeps that credential (GET never returns `key`, so clients re-send existing items that way).
 */
export function parseKeyCredentials(input: unknown, existing: StoredKeyCredential[]): StoredKeyCredential[] {
  if (!Array.isArray(input)) throw graphErrors.invalidProperty('keyCredentials', 'Expected an array.');
  const result: StoredKeyCredential[] = input.map((item, index) => parseOne(item, index, existing));
  const seenKeyIds = new Set<string>();
  const seenCerts = new Set<string>();
  for (const cred of result) {
    if (seenKeyIds.has(cred.keyId))
      throw graphErrors.invalidProperty('keyCredentials', `keyId ${cred.keyId} appears twice.`);
    seenKeyIds.add(cred.keyId);
    if (seenCerts.has(cred.key))
      throw graphErrors.invalidProperty('keyCredentials', 'The same certificate appears twice.');
    seenCerts.add(cred.key);
  }
  return result;
}

function parseOne(item: unknown, index: number, existing: StoredKeyCredential[]): StoredKeyCredential {
  const where = `keyCredentials[${index}]`;
  if (typeof item !== 'object' || item === null || Array.isArray(item))
    throw graphErrors.invalidProperty('keyCredentials', `${where} must be an object.`);
  const fields = item as Record<string, unknown>;
  for (const name of Object.keys(fields)) {
    if (!ALLOWED.has(name))
      throw graphErrors.invalidProperty(
        'keyCredentials',
        `${where}.${name} is not a keyCredential property.`,
      );
  }
  if (fields.keyId !== undefined && !isGuid(fields.keyId))
    throw graphErrors.invalidProperty('keyCredentials', `${where}.keyId must be a GUID.`);
  const keep = existing.find((c) => c.keyId === fields.keyId);
  if (keep && (fields.key === null || fields.key === undefined))
    return {
      ...keep,
      ...(typeof fields.displayName === 'string' ? { displayName: fields.displayName } : {}),
    };

  if (fields.type !== 'AsymmetricX509Cert')
    throw graphErrors.invalidProperty('keyCredentials', `${where}.type must be 'AsymmetricX509Cert'.`);
  if (fields.usage !== 'Verify')
    throw graphErrors.invalidProperty('keyCredentials', `${where}.usage must be 'Verify'.`);
  if (
    fields.displayName !== undefined &&
    fields.displayName !== null &&
    typeof fields.displayName !== 'string'
  ) {
    throw graphErrors.invalidProperty('keyCredentials', `${where}.displayName must be a string.`);
  }
  if (
    fields.customKeyIdentifier !== undefined &&
    fields.customKeyIdentifier !== null &&
    typeof fields.customKeyIdentifier !== 'string'
  ) {
    throw graphErrors.invalidProperty('keyCredentials', `${where}.customKeyIdentifier must be a string.`);
  }
  const certificate = decodeCertificate(fields.key, where);
  return {
    keyId: typeof fields.keyId === 'string' ? fields.keyId.toLowerCase() : newGuid(),
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
    displayName: typeof fields.displayName === 'string' ? fields.displayName : null,
    customKeyIdentifier:
      typeof fields.customKeyIdentifier === 'string'
        ? fields.customKeyIdentifier
        : certificate.thumbprints.sha1Hex,
    // The validity period always comes from the certificate; dates sent by the client are ignored.
    startDateTime: certificate.notBefore.toISOString(),
    endDateTime: certificate.notAfter.toISOString(),
    key: certificate.der.toString('base64'),
  };
}

function decodeCertificate(key: unknown, where: string): ParsedCertificate {
  if (typeof key !== 'string' || key.trim() === '')
    throw graphErrors.invalidProperty('keyCredentials', `${where}.key must be the base64 DER certificate.`);
  const compact = key.replace(/\s+/g, '');
  if (!BASE64.test(compact))
    throw graphErrors.invalidProperty('keyCredentials', `${where}.key is not valid base64.`);
  const bytes = Buffer.from(compact, 'base64');
  if (holdsPrivateKey(bytes)) {
    throw graphErrors.invalidProperty(
      'keyCredentials',
      `${where}.key holds a private key; upload only the public certificate (.cer).`,
    );
  }
  if (bytes[0] !== 0x30)
    throw graphErrors.invalidProperty(
      'keyCredentials',
      `${where}.key must be a DER X.509 certificate (base64 of the .cer file).`,
    );
  try {
    return parseCertificate(bytes);
  } catch (err) {
    const detail = err instanceof CertificateError ? err.message : 'not an X.509 certificate';
    throw graphErrors.invalidProperty('keyCredentials', `${where}.key: ${detail}.`);
  }
}

/** PEM private keys, DER PKCS#8/PKCS#1 keys and PKCS#12 bundles (which carry keys) all count. */
function holdsPrivateKey(bytes: Buffer): boolean {
  const text = bytes.toString('latin1');
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) return true;
  for (const type of ['pkcs8', 'pkcs1', 'sec1'] as const) {
    try {
      createPrivateKey({ key: bytes, format: 'der', type });
      return true;
    } catch {
      // not this kind of key
    }
  }
  return looksLikePkcs12(bytes);
}

function looksLikePkcs12(bytes: Buffer): boolean {
  try {
    const asn1 = forge.asn1.fromDer(forge.util.createBuffer(bytes.toString('binary')), false);
    const first = Array.isArray(asn1.value) ? asn1.value[0] : undefined;
    // PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo, ... }
    return (
      first !== undefined &&
      first.type === forge.asn1.Type.INTEGER &&
      typeof first.value === 'string' &&
      forge.util.createBuffer(first.value).toHex() === '03'
    );
  } catch {
    return false;
  }
}

/** Whether the time lies inside a key credential's validity period. */
export function keyCredentialValidAt(cred: StoredKeyCredential, at: Date): boolean {
  return at >= new Date(cred.startDateTime) && at <= new Date(cred.endDateTime);
}
