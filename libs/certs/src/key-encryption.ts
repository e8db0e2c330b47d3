/**
 * Private keys encrypted at rest: PKCS#8 EncryptedPrivateKeyInfo with PBES2 (RFC 8018),
 * PBKDF2-HMAC-SHA256 at KEY_ENCRYPTION_ITERATIONS and AES-256-CBC, which OpenSSL, Java's
 * `EncryptedPrivateKeyInfo` and Go's `youmark/pkcs8` all read. Reading goes through OpenSSL
 * (`readPrivateKey`), so files written with fewer iterations stay readable;
 * `describeKeyEncryption` tells them apart.
 *
 * @example
 *   writePrivateKeyFile(path, encryptPrivateKey(privateKeyPem, passphrase));
 *   describeKeyEncryption(readFileSync(path, 'utf8'))?.strong; // true
 */
import forge from 'node-forge';
import { createCipheriv, pbkdf2Sync, randomBytes } from 'node:crypto';
import { derToPem } from './certificate';
import { KEY_ENCRYPTION_ITERATIONS, OID } from './encrypted-key-info';
import { privateKeyObject } from './private-key';

export {
  describeKeyEncryption,
  KEY_ENCRYPTION_ITERATIONS,
  MAX_KEY_ENCRYPTION_ITERATIONS,
  type KeyEncryption,
} from './encrypted-key-info';

const { asn1 } = forge;
const U = asn1.Class.UNIVERSAL;
const T = asn1.Type;
const seq = (...value: forge.asn1.Asn1[]) => asn1.create(U, T.SEQUENCE, true, value);
const oid = (id: string) => asn1.create(U, T.OID, false, asn1.oidToDer(id).getBytes());
const octets = (b: Buffer) => asn1.create(U, T.OCTETSTRING, false, b.toString('binary'));
const integer = (n: number) => asn1.create(U, T.INTEGER, false, asn1.integerToDer(n).getBytes());

/**
 * Encrypted PKCS#8 PEM for storing a key at rest: PBES2 with PBKDF2-HMAC-SHA256
 * (KEY_ENCRYPTION_ITERATIONS, a random 16-byte salt) and AES-256-CBC (a random IV).
 * `currentPassphrase` opens `pem` when it is itself encrypted.
 */
export function encryptPrivateKey(pem: string, passphrase: string, currentPassphrase?: string): string {
  if (passphrase.length < 8) throw new TypeError('the passphrase must have at least 8 characters');
  const plain = privateKeyObject(pem, currentPassphrase).export({ type: 'pkcs8', format: 'der' });
  const salt = randomBytes(16);
  const iv = randomBytes(16);
  const key = pbkdf2Sync(passphrase, salt, KEY_ENCRYPTION_ITERATIONS, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const encrypted = Buffer.concat([cipher.update(plain), cipher.final()]);
  key.fill(0);
  plain.fill(0);
  const info = seq(
    seq(
      oid(OID.pbes2),
      seq(
        seq(
          oid(OID.pbkdf2),
          seq(
            octets(salt),
            integer(KEY_ENCRYPTION_ITERATIONS),
            seq(oid(OID.hmacWithSHA256), asn1.create(U, T.NULL, false, '')),
          ),
        ),
        seq(oid(OID.aes256Cbc), octets(iv)),
      ),
    ),
    octets(encrypted),
  );
  return derToPem(Buffer.from(asn1.toDer(info).getBytes(), 'binary'), 'ENCRYPTED PRIVATE KEY');
}
