/**
 * Reading private keys: PKCS#1, PKCS#8 and encrypted PKCS#8 PEM, by OpenSSL (node:crypto), so
 * every key file certflow ever wrote stays readable whatever protects it.
 *
 * @example
 *   const pkcs8 = readPrivateKey(readFileSync('partner.key.pem', 'utf8'), process.env.PARTNER_KEY_PASSPHRASE);
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import {
  describeKeyEncryption,
  firstPemBlock,
  KEY_ENCRYPTION_ITERATIONS,
  MAX_KEY_ENCRYPTION_ITERATIONS,
} from './encrypted-key-info';
import { CertificateError } from './errors';

export function isEncryptedPrivateKey(pem: string): boolean {
  return /-{5}BEGIN ENCRYPTED PRIVATE KEY-{5}|Proc-Type: 4,ENCRYPTED/.test(firstPemBlock(pem) ?? '');
}

/** The KeyObject of a PEM private key; every failure is a CertificateError naming what is wrong. */
export function privateKeyObject(text: string, passphrase?: string): KeyObject {
  // What OpenSSL reads is the first PEM block; checking that block alone, and handing OpenSSL
  // nothing else, keeps text around it from hiding what protects the key.
  const pem = firstPemBlock(text) ?? text;
  const encrypted = isEncryptedPrivateKey(pem);
  if (encrypted && (passphrase === undefined || passphrase === '')) {
    throw new CertificateError('ERR_KEY_ENCRYPTED', 'the private key is encrypted; a passphrase is needed');
  }
  if (!/-{5}BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-{5}/.test(pem)) {
    throw new CertificateError(
      'ERR_KEY_MALFORMED',
      'no PEM private key (PKCS#1, PKCS#8 or encrypted PKCS#8) found',
    );
  }
  if (encrypted) {
    // Before OpenSSL runs the KDF: a hostile count would hold the process for hours.
    const protection = describeKeyEncryption(pem);
    // Only PBKDF2's cost is bounded here; another KDF (scrypt: N, r and p chosen by the file) could
    // hold the process just as long. certflow never writes one, and Java and Go cannot read it.
    if (protection?.scheme.startsWith('PBES2 with '))
      throw new CertificateError(
        'ERR_KEY_MALFORMED',
        `the private key is encrypted with ${protection.scheme.slice('PBES2 with '.length)}, which certflow does not open: encrypt it with PBKDF2 first (openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter ${KEY_ENCRYPTION_ITERATIONS})`,
      );
    if (protection && 'iterations' in protection && protection.iterations > MAX_KEY_ENCRYPTION_ITERATIONS)
      throw new CertificateError(
        'ERR_KEY_MALFORMED',
        `the private key claims ${protection.iterations.toLocaleString('en-US')} PBKDF2 iterations, more than the ${MAX_KEY_ENCRYPTION_ITERATIONS.toLocaleString('en-US')} certflow opens (it writes ${KEY_ENCRYPTION_ITERATIONS.toLocaleString('en-US')}): not decrypted`,
      );
  }
  try {
    return createPrivateKey(
      encrypted ? { key: pem, format: 'pem', passphrase: passphrase! } : { key: pem, format: 'pem' },
    );
  } catch (err) {
    if (encrypted)
      throw new CertificateError('ERR_WRONG_PASSWORD', 'cannot decrypt the private key: wrong passphrase?');
    throw new CertificateError('ERR_KEY_MALFORMED', `cannot read the private key: ${(err as Error).message}`);
  }
}

/**
 * Any PEM private key (PKCS#1 `RSA PRIVATE KEY`, PKCS#8, encrypted PKCS#8 with `passphrase`)
 * as unencrypted PKCS#8 PEM.
 */
export function readPrivateKey(pem: string, passphrase?: string): string {
  return privateKeyObject(pem, passphrase).export({ type: 'pkcs8', format: 'pem' }).toString();
}
