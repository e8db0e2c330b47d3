/**
 * What protects an encrypted PKCS#8 key, read from its AlgorithmIdentifier without decrypting
 * it: the scheme, PBKDF2's PRF and iteration count, the cipher. Used to tell old key files from
 * today's (`cert show`, `cert reencrypt`) and to refuse, before OpenSSL spends the time, an
 * iteration count no one would choose (a hostile file would otherwise hold a process for hours).
 */
import forge from 'node-forge';
import { CertificateError } from './errors';

/** OWASP's figure for PBKDF2-HMAC-SHA256 (Password Storage Cheat Sheet). */
export const KEY_ENCRYPTION_ITERATIONS = 600_000;
/**
 * Key files with more PBKDF2 iterations are refused before decryption: at 600,000 a key opens
 * in a fraction of a second; 10,000,000 already takes seconds, and a file claiming billions
 * would hang the worker.
 */
export const MAX_KEY_ENCRYPTION_ITERATIONS = 10_000_000;

export const OID = {
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSHA1: '1.2.840.113549.2.7',
  hmacWithSHA256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
};

const PRFS: Record<string, string> = {
  [OID.hmacWithSHA1]: 'hmacWithSHA1',
  '1.2.840.113549.2.8': 'hmacWithSHA224',
  [OID.hmacWithSHA256]: 'hmacWithSHA256',
  '1.2.840.113549.2.10': 'hmacWithSHA384',
  '1.2.840.113549.2.11': 'hmacWithSHA512',
  '1.2.840.113549.2.12': 'hmacWithSHA512-224',
  '1.2.840.113549.2.13': 'hmacWithSHA512-256',
};
const STRONG_PRFS = new Set(['hmacWithSHA256', 'hmacWithSHA384', 'hmacWithSHA512']);

const CIPHERS: Record<string, string> = {
  '1.3.14.3.2.7': 'des-cbc',
  '1.2.840.113549.3.7': 'des-ede3-cbc',
  '1.2.840.113549.3.2': 'rc2-cbc',
  '2.16.840.1.101.3.4.1.2': 'aes-128-cbc',
  '2.16.840.1.101.3.4.1.22': 'aes-192-cbc',
  [OID.aes256Cbc]: 'aes-256-cbc',
  '2.16.840.1.101.3.4.1.6': 'aes-128-gcm',
  '2.16.840.1.101.3.4.1.46': 'aes-256-gcm',
};

const LEGACY_SCHEMES: Record<string, string> = {
  '1.2.840.113549.1.5.1': 'PBES1 pbeWithMD2AndDES-CBC',
  '1.2.840.113549.1.5.3': 'PBES1 pbeWithMD5AndDES-CBC',
  '1.2.840.113549.1.5.4': 'PBES1 pbeWithMD2AndRC2-CBC',
  '1.2.840.113549.1.5.6': 'PBES1 pbeWithMD5AndRC2-CBC',
  '1.2.840.113549.1.5.10': 'PBES1 pbeWithSHA1AndDES-CBC',
  '1.2.840.113549.1.5.11': 'PBES1 pbeWithSHA1AndRC2-CBC',
  '1.2.840.113549.1.12.1.1': 'PKCS#12 pbeWithSHAAnd128BitRC4',
  '1.2.840.113549.1.12.1.2': 'PKCS#12 pbeWithSHAAnd40BitRC4',
  '1.2.840.113549.1.12.1.3': 'PKCS#12 pbeWithSHAAnd3-KeyTripleDES-CBC',
  '1.2.840.113549.1.12.1.4': 'PKCS#12 pbeWithSHAAnd2-KeyTripleDES-CBC',
  '1.2.840.113549.1.12.1.5': 'PKCS#12 pbeWithSHAAnd128BitRC2-CBC',
  '1.2.840.113549.1.12.1.6': 'PKCS#12 pbeWithSHAAnd40BitRC2-CBC',
};
const KDF_NAMES: Record<string, string> = { '1.3.6.1.4.1.11591.4.11': 'scrypt' };

/**
 * The first PEM block of `text` with its headers: the one OpenSSL reads (it skips any text before
 * the first BEGIN line and ignores what follows the block).
 */
export function firstPemBlock(text: string): string | undefined {
  return /-{5}BEGIN ([A-Z0-9 ]+)-{5}[\s\S]*?-{5}END \1-{5}/.exec(text)?.[0];
}

const { asn1 } = forge;
const U = asn1.Class.UNIVERSAL;
const T = asn1.Type;

export type KeyEncryption =
  | { scheme: 'PBES2'; kdf: 'PBKDF2'; prf: string; iterations: number; cipher: string; strong: boolean }
  | { scheme: string; strong: false };

function malformed(what: string): CertificateError {
  return new CertificateError('ERR_KEY_MALFORMED', `not a valid encrypted PKCS#8 key: ${what}`);
}

/** The n-th element of a SEQUENCE, checked to be of `type` (a malformed key otherwise). */
function element(node: forge.asn1.Asn1, index: number, type: number, what: string): forge.asn1.Asn1 {
  const child = Array.isArray(node.value) ? node.value[index] : undefined;
  if (!child || child.tagClass !== U || child.type !== type)
    throw malformed(`${what} is missing or of the wrong type`);
  if ((type === T.SEQUENCE) !== Array.isArray(child.value)) throw malformed(`${what} is not well formed`);
  return child;
}

function oidOf(node: forge.asn1.Asn1, index: number, what: string): string {
  const der = element(node, index, T.OID, what).value as string;
  if (der.length === 0) throw malformed(`${what} is an empty OID`);
  return asn1.derToOid(der);
}

function iterationCount(node: forge.asn1.Asn1): number {
  const bytes = Buffer.from(
    element(node, 1, T.INTEGER, 'the PBKDF2 iteration count').value as string,
    'binary',
  );
  if (bytes.length === 0 || bytes[0]! & 0x80)
    throw malformed('the PBKDF2 iteration count is not a positive integer');
  let start = 0;
  while (start < bytes.length && bytes[start] === 0) start++;
  if (bytes.length - start > 6)
    throw malformed(`the PBKDF2 iteration count (${bytes.length} bytes) is absurdly large`);
  const count = bytes.subarray(start).reduce((n, b) => n * 256 + b, 0);
  if (count < 1) throw malformed('the PBKDF2 iteration count is 0');
  return count;
}

/** What protects an encrypted PKCS#8 PEM; undefined for an unencrypted key. Never reads the key itself. */
export function describeKeyEncryption(pem: string): KeyEncryption | undefined {
  // Only the first PEM block counts, as for OpenSSL: a Proc-Type line outside it changes nothing.
  const text = firstPemBlock(pem) ?? pem;
  if (/Proc-Type: 4,ENCRYPTED/.test(text)) return { scheme: 'PEM Proc-Type', strong: false };
  const block =
    /-{5}BEGIN ENCRYPTED PRIVATE KEY-{5}([A-Za-z0-9+/=\s]*)-{5}END ENCRYPTED PRIVATE KEY-{5}/.exec(text);
  if (!block) {
    if (/-{5}BEGIN (RSA |EC )?PRIVATE KEY-{5}/.test(text)) return undefined;
    throw new CertificateError(
      'ERR_KEY_MALFORMED',
      'no PEM private key (PKCS#1, PKCS#8 or encrypted PKCS#8) found',
    );
  }
  let info: forge.asn1.Asn1;
  try {
    info = asn1.fromDer(Buffer.from(block[1]!.replace(/\s+/g, ''), 'base64').toString('binary'), true);
  } catch (err) {
    throw malformed(`its DER does not parse (${err instanceof Error ? err.message : String(err)})`);
  }
  if (info.tagClass !== U || info.type !== T.SEQUENCE || !Array.isArray(info.value))
    throw malformed('it is not a SEQUENCE');
  const algorithm = element(info, 0, T.SEQUENCE, 'the encryption AlgorithmIdentifier');
  element(info, 1, T.OCTETSTRING, 'the encrypted data');
  const scheme = oidOf(algorithm, 0, 'the encryption scheme');
  if (scheme !== OID.pbes2)
    return { scheme: LEGACY_SCHEMES[scheme] ?? `unknown scheme ${scheme}`, strong: false };

  const params = element(algorithm, 1, T.SEQUENCE, 'the PBES2 parameters');
  const kdf = element(params, 0, T.SEQUENCE, 'the key derivation function');
  const kdfOid = oidOf(kdf, 0, 'the key derivation function');
  if (kdfOid !== OID.pbkdf2) return { scheme: `PBES2 with ${KDF_NAMES[kdfOid] ?? kdfOid}`, strong: false };
  const pbkdf2 = element(kdf, 1, T.SEQUENCE, 'the PBKDF2 parameters');
  const iterations = iterationCount(pbkdf2);
  // After salt and iterationCount: keyLength (INTEGER) and the PRF, both optional (HMAC-SHA1 when absent, RFC 8018 A.2).
  const prfNode = (pbkdf2.value as forge.asn1.Asn1[])
    .slice(2)
    .find((n) => n.tagClass === U && n.type === T.SEQUENCE);
  const prfOid = prfNode ? oidOf(prfNode, 0, 'the PBKDF2 PRF') : OID.hmacWithSHA1;
  const prf = PRFS[prfOid] ?? prfOid;
  const cipherOid = oidOf(element(params, 1, T.SEQUENCE, 'the encryption scheme'), 0, 'the cipher');
  const cipher = CIPHERS[cipherOid] ?? cipherOid;
  const strong =
    STRONG_PRFS.has(prf) && iterations >= KEY_ENCRYPTION_ITERATIONS && cipher.startsWith('aes-256-');
  return { scheme: 'PBES2', kdf: 'PBKDF2', prf, iterations, cipher, strong };
}
