/**
 * The token-signing keys. Each is an RSA key with a self-signed certificate, as Entra
 * publishes them (`x5c`), and its `kid` is the certificate's SHA-1 thumbprint in base64url,
 * which is why v1 tokens can carry `x5t` equal to `kid`.
 */
import { KeyObject, createHmac, createPrivateKey, sign as cryptoSign, constants } from 'node:crypto';
import {
  assertKeyMatchesCertificate,
  createSelfSignedCertificate,
  parseCertificate,
  type ParsedCertificate,
} from '@certflow/certs';
import type { StoredSigningKey } from './state-store';

export interface SigningKey {
  kid: string;
  certificate: ParsedCertificate;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface Jwk {
  kty: 'RSA';
  use: 'sig';
  kid: string;
  x5t: string;
  n: string;
  e: string;
  x5c: string[];
  issuer: string;
}

export function createSigningKey(now: Date): StoredSigningKey {
  const pair = createSelfSignedCertificate({
    commonName: 'certflow emulator token signing',
    days: 3650,
    now,
  });
  const certificate = parseCertificate(pair.certificatePem);
  return {
    kid: certificate.thumbprints.sha1Base64Url,
    privateKeyPem: pair.privateKeyPem,
    certificatePem: pair.certificatePem,
    createdDateTime: now.toISOString(),
  };
}

/** Throws (CertificateError) if the stored key and certificate do not belong together. */
export function loadSigningKey(stored: StoredSigningKey): SigningKey {
  const certificate = parseCertificate(stored.certificatePem);
  assertKeyMatchesCertificate(stored.privateKeyPem, certificate);
  if (certificate.thumbprints.sha1Base64Url !== stored.kid)
    throw new Error(`kid ${stored.kid} is not the certificate's thumbprint`);
  return {
    kid: stored.kid,
    certificate,
    privateKey: createPrivateKey(stored.privateKeyPem),
    publicKey: certificate.publicKey,
  };
}

export function jwkOf(key: SigningKey, issuer: string): Jwk {
  const { n, e } = key.publicKey.export({ format: 'jwk' });
  if (typeof n !== 'string' || typeof e !== 'string') throw new Error('signing key is not RSA');
  return {
    kty: 'RSA',
    use: 'sig',
    kid: key.kid,
    x5t: key.certificate.thumbprints.sha1Base64Url,
    n,
    e,
    x5c: [key.certificate.der.toString('base64')],
    issuer,
  };
}

const RSA_ALGS: Record<string, { hash: string; pss: boolean }> = {
  RS256: { hash: 'sha256', pss: false },
  RS384: { hash: 'sha384', pss: false },
  RS512: { hash: 'sha512', pss: false },
  PS256: { hash: 'sha256', pss: true },
  PS384: { hash: 'sha384', pss: true },
  PS512: { hash: 'sha512', pss: true },
};

/**
 * Signs a compact JWT with `key`. Besides the RSA algorithms it deliberately supports
 * `none` and HS256/384/512 keyed with the public key's PEM: the classic algorithm-confusion
 * attacks, so that validators elsewhere can be tested against them.
 */
export function signCompactJwt(
  key: SigningKey,
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
): string {
  const alg = String(header.alg);
  const signingInput = `${b64url(header)}.${b64url(payload)}`;
  let signature: Buffer;
  const rsa = RSA_ALGS[alg];
  if (rsa) {
    signature = cryptoSign(rsa.hash, Buffer.from(signingInput), {
      key: key.privateKey,
      ...(rsa.pss
        ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST }
        : {}),
    });
  } else if (alg === 'none') {
    signature = Buffer.alloc(0);
  } else if (/^HS(256|384|512)$/.test(alg)) {
    const pem = key.publicKey.export({ type: 'spki', format: 'pem' });
    signature = createHmac(`sha${alg.slice(2)}`, pem)
      .update(signingInput)
      .digest();
  } else {
    throw new TypeError(`cannot sign with alg ${alg}`);
  }
  return `${signingInput}.${signature.toString('base64url')}`;
}

function b64url(value: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}
