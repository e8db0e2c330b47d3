import {
  constants,
  createHash,
  createSign,
  generateKeyPairSync,
  publicDecrypt,
  type KeyObject,
} from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CertificateError } from './errors';
import { encryptPrivateKey } from './key-encryption';
import { fileKeySigner, verifySignature, type SignatureAlgorithm } from './key-signer';

const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const signer = fileKeySigner(pem, '/srv/partner/partner.key.pem');
const message = Buffer.from('eyJhbGciOiJQUzI1NiJ9.eyJzdWIiOiJwYXJ0bmVyIn0');

/** MGF1 with SHA-256 (RFC 8017 B.2.1). */
function mgf1Sha256(seed: Buffer, length: number): Buffer {
  const blocks: Buffer[] = [];
  for (let counter = 0; blocks.length * 32 < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    blocks.push(createHash('sha256').update(seed).update(c).digest());
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/**
 * Opens an RSASSA-PSS signature by hand (RFC 8017 9.1.2, EMSA-PSS-VERIFY) so the test sees the
 * parameters themselves: the hash, the MGF and the salt length.
 */
function pssSaltLength(key: KeyObject, data: Buffer, signature: Buffer): number {
  const em = publicDecrypt({ key, padding: constants.RSA_NO_PADDING }, signature);
  const emBits = key.asymmetricKeyDetails!.modulusLength! - 1;
  const encoded = em.subarray(em.length - Math.ceil(emBits / 8));
  expect(encoded.at(-1)).toBe(0xbc);
  const h = encoded.subarray(encoded.length - 33, encoded.length - 1);
  const db = Buffer.from(encoded.subarray(0, encoded.length - 33));
  const mask = mgf1Sha256(h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >> (8 * encoded.length - emBits);
  const one = db.indexOf(1);
  expect(db.subarray(0, one).every((b) => b === 0)).toBe(true);
  const salt = db.subarray(one + 1);
  const mHash = createHash('sha256').update(data).digest();
  const expected = createHash('sha256').update(Buffer.alloc(8)).update(mHash).update(salt).digest();
  expect(h.equals(expected)).toBe(true);
  return salt.length;
}

describe('fileKeySigner', () => {
  it('describes the key without holding a secret in the description', () => {
    expect(signer.kind).toBe('file');
    expect(signer.description).toBe('/srv/partner/partner.key.pem');
    expect(signer.publicKey.export({ format: 'jwk' })).toEqual(publicKey.export({ format: 'jwk' }));
  });

  it('RS256 is RSASSA-PKCS1-v1_5 with SHA-256, byte for byte', async () => {
    const signature = await signer.sign('RS256', message);
    expect(signature.equals(createSign('RSA-SHA256').update(message).sign(privateKey))).toBe(true);
    expect(verifySignature(publicKey, 'RS256', message, signature)).toBe(true);
  });

  it('PS256 is RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt', async () => {
    const signature = await signer.sign('PS256', message);
    expect(pssSaltLength(publicKey, message, signature)).toBe(32);
    expect(verifySignature(publicKey, 'PS256', message, signature)).toBe(true);
    // a random salt: two signatures of the same message differ, both verify
    const again = await signer.sign('PS256', message);
    expect(again.equals(signature)).toBe(false);
    expect(verifySignature(publicKey, 'PS256', message, again)).toBe(true);
  });

  it('verifySignature refuses another message, another algorithm and another key', async () => {
    const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey;
    for (const algorithm of ['RS256', 'PS256'] as SignatureAlgorithm[]) {
      const signature = await signer.sign(algorithm, message);
      expect(verifySignature(publicKey, algorithm, Buffer.from('something else'), signature)).toBe(false);
      expect(verifySignature(other, algorithm, message, signature)).toBe(false);
      const otherAlgorithm = algorithm === 'RS256' ? 'PS256' : 'RS256';
      expect(verifySignature(publicKey, otherAlgorithm, message, signature)).toBe(false);
    }
  });

  it('refuses an unknown algorithm, a non-RSA key, an encrypted key and garbage', async () => {
    await expect(signer.sign('ES256' as SignatureAlgorithm, message)).rejects.toThrow(/RS256 or PS256/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    const codeOf = (key: string) => {
      try {
        fileKeySigner(key, '/srv/partner/partner.key.pem');
      } catch (err) {
        return err instanceof CertificateError ? `${err.code}: ${err.message}` : String(err);
      }
      return 'no error';
    };
    expect(codeOf(ec)).toMatch(
      /^ERR_KEY_MALFORMED: \/srv\/partner\/partner.key.pem: an RSA private key is needed, got ec/,
    );
    expect(codeOf(encryptPrivateKey(pem, 'correct horse battery'))).toMatch(/^ERR_KEY_ENCRYPTED/);
    expect(codeOf('not a key')).toMatch(/^ERR_KEY_MALFORMED/);
  });
});
