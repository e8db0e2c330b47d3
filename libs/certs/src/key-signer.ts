/**
 * The signer seam: whatever holds the partner's private key (a PEM file read into this process,
 * or a key inside a PKCS#11 token) signs through one interface, so certificates, CSRs, client
 * assertions and Graph's proof of possession never need the key itself.
 *
 * @example
 *   const signer = fileKeySigner(privateKeyPem, '/srv/partner/partner.key.pem');
 *   const signature = await signer.sign('PS256', Buffer.from(signingInput));
 */
import { constants, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { CertificateError } from './errors';
import { privateKeyObject } from './private-key';

/** RS256 = RSASSA-PKCS1-v1_5 with SHA-256; PS256 = RSASSA-PSS with SHA-256, MGF1-SHA-256, salt 32. */
export type SignatureAlgorithm = 'RS256' | 'PS256';

export interface KeySigner {
  /** 'file': a PEM key held in this process; 'pkcs11': a key inside a PKCS#11 token. */
  readonly kind: 'file' | 'pkcs11';
  /** The RSA public key of the pair. */
  readonly publicKey: KeyObject;
  /** Where the key lives, never a secret: a file path or a PKCS#11 URI without PIN. */
  readonly description: string;
  /**
   * Signs `data` (the message, not a digest). RS256 = RSASSA-PKCS1-v1_5 with SHA-256;
   * PS256 = RSASSA-PSS with SHA-256, MGF1-SHA-256, salt length 32 (what Entra and MSAL use).
   */
  sign(algorithm: SignatureAlgorithm, data: Buffer): Promise<Buffer>;
}

/** PSS as Entra ID and MSAL use it: the salt is as long as the SHA-256 digest. */
const PSS_SALT_LENGTH = 32;

function paddingOf(algorithm: SignatureAlgorithm): { padding: number; saltLength?: number } {
  if (algorithm === 'RS256') return { padding: constants.RSA_PKCS1_PADDING };
  if (algorithm === 'PS256') return { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH };
  throw new TypeError(`unsupported signature algorithm ${String(algorithm)}: RS256 or PS256`);
}

/** Signs synchronously with a private key held in this process (what fileKeySigner does). */
export function signWithKey(privateKey: KeyObject, algorithm: SignatureAlgorithm, data: Buffer): Buffer {
  return sign('sha256', data, { key: privateKey, ...paddingOf(algorithm) });
}

/** Checks a signature made by sign() with node:crypto (tests and self-checks). */
export function verifySignature(
  publicKey: KeyObject,
  algorithm: SignatureAlgorithm,
  data: Buffer,
  signature: Buffer,
): boolean {
  return verify('sha256', data, { key: publicKey, ...paddingOf(algorithm) }, signature);
}

/** A signer over an in-memory PKCS#8 PEM key (node:crypto). */
export function fileKeySigner(privateKeyPem: string, description: string): KeySigner {
  const privateKey = privateKeyObject(privateKeyPem);
  if (privateKey.asymmetricKeyType !== 'rsa') {
    throw new CertificateError(
      'ERR_KEY_MALFORMED',
      `${description}: an RSA private key is needed, got ${privateKey.asymmetricKeyType ?? 'an unknown key type'}`,
    );
  }
  return {
    kind: 'file',
    publicKey: createPublicKey(privateKey),
    description,
    sign: async (algorithm, data) => signWithKey(privateKey, algorithm, data),
  };
}
