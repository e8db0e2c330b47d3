/**
 * Reads one directory of PARTNER_CERT_DIR (a generation, or the directory itself in the first
 * layout) into a PartnerCredential. Reading checks everything that would otherwise fail later and
 * obscurely at the token endpoint: the files present and readable, exactly one key, the key
 * belongs to the certificate, the `.cer` is the same certificate, a key file not readable by
 * others. The validity period is not checked here (CertificateStore.load does).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  assertKeyMatchesCertificate,
  CertificateError,
  describeKeyEncryption,
  fileKeySigner,
  isEncryptedPrivateKey,
  parseCertificate,
  readPrivateKey,
  type ParsedCertificate,
} from '@certflow/certs';
import {
  CertificateStoreError,
  guardLayout,
  type PartnerCredential,
  type StoreReadOptions,
} from './credential';
import {
  CERTIFICATE_FILE,
  CER_FILE,
  GenerationLayout,
  KEY_REFERENCE_FILE,
  PRIVATE_KEY_FILE,
} from './generations';
import { assertSignerMatches, inToken, openToken } from './key-in-token';

/**
 * Reads and cross-checks `generation` of `layout` (undefined: the layout's directory, first
 * layout). A key in a token opens a session: close() the credential when done.
 */
export function readCredential(
  layout: GenerationLayout,
  generation: string | undefined,
  opts: StoreReadOptions,
): PartnerCredential {
  const dir = generation === undefined ? layout.directory : guardLayout(() => layout.path(generation));
  const keyFile = join(dir, PRIVATE_KEY_FILE);
  const keyReference = join(dir, KEY_REFERENCE_FILE);
  const certificatePath = join(dir, CERTIFICATE_FILE);
  const cerPath = join(dir, CER_FILE);
  const keys = [keyFile, keyReference].filter((f) => existsSync(f));
  const missing = [certificatePath, cerPath].filter((f) => !existsSync(f));
  if (keys.length === 0) missing.unshift(keyFile);
  if (missing.length === 3) {
    throw new CertificateStoreError(
      'ERR_CERT_NOT_FOUND',
      `no partner certificate in ${layout.directory}; create one with "cert create"`,
      layout.directory,
    );
  }
  if (missing.length > 0) {
    throw new CertificateStoreError(
      'ERR_CERT_INCOMPLETE',
      `the partner certificate in ${dir} is incomplete: ${missing.join(', ')} missing; restore it, or replace the key pair with "cert create --force"`,
      missing[0],
    );
  }
  if (keys.length === 2)
    throw new CertificateStoreError(
      'ERR_STATE_DAMAGED',
      `${dir} holds both a key file and a PKCS#11 key reference; one certificate has one key: remove the one that does not belong to ${certificatePath}`,
      keyReference,
    );
  const certificate = parseFile(certificatePath);
  const cer = parseFile(cerPath);
  if (!cer.der.equals(certificate.der)) {
    throw new CertificateStoreError(
      'ERR_STATE_DAMAGED',
      `${cerPath} is not the same certificate as ${certificatePath} (SHA-256 ${cer.thumbprints.sha256Hex} vs ${certificate.thumbprints.sha256Hex})`,
      cerPath,
    );
  }
  // A file copied over one of the links would otherwise be ignored silently.
  if (generation !== undefined && generation === guardLayout(() => layout.current()))
    guardLayout(() => layout.assertNoStrayFiles(generation));
  const paths = { directory: layout.directory, generation, certificatePath, cerPath, certificate };
  if (keys[0] === keyReference) {
    const keyUri = readText(keyReference).trim();
    const { token, uri } = openToken(keyUri, opts.env, keyReference);
    try {
      const signer = inToken(keyReference, () => token.signer(uri));
      assertSignerMatches(signer, certificate, keyReference);
      const attributes = inToken(keyReference, () => token.keyAttributes(uri));
      return {
        ...paths,
        keyUri,
        signer,
        keyProtection: { store: 'pkcs11', attributes },
        close: () => token.close(),
      };
    } catch (err) {
      token.close();
      throw err;
    }
  }
  const { privateKeyPem, stored } = readKeyFile(keyFile, certificatePath, certificate, opts.passphrase);
  return {
    ...paths,
    privateKeyPath: keyFile,
    privateKeyPem,
    keyProtection: { store: 'file', encryption: describeKeyEncryption(stored) },
    signer: fileKeySigner(privateKeyPem, keyFile),
    close: () => {},
  };
}

function readKeyFile(
  keyFile: string,
  certificatePath: string,
  certificate: ParsedCertificate,
  passphrase: string | undefined,
): { privateKeyPem: string; stored: string } {
  assertPrivateKeyFileMode(keyFile);
  const stored = readText(keyFile);
  let privateKeyPem: string;
  if (isEncryptedPrivateKey(stored)) {
    if (!passphrase)
      throw new CertificateStoreError(
        'ERR_KEY_ENCRYPTED',
        `${keyFile} is encrypted; set PARTNER_KEY_PASSPHRASE`,
        keyFile,
      );
    try {
      privateKeyPem = readPrivateKey(stored, passphrase);
    } catch (err) {
      throw wrap(
        err instanceof CertificateError && err.code === 'ERR_WRONG_PASSWORD'
          ? new CertificateError('ERR_WRONG_PASSWORD', 'wrong PARTNER_KEY_PASSPHRASE: cannot decrypt the key')
          : err,
        keyFile,
      );
    }
  } else if (/-{5}BEGIN PRIVATE KEY-{5}/.test(stored)) {
    privateKeyPem = stored;
  } else {
    throw new CertificateStoreError(
      'ERR_KEY_MALFORMED',
      `${keyFile} is not a PKCS#8 PEM key (plain or encrypted)`,
      keyFile,
    );
  }
  try {
    assertKeyMatchesCertificate(privateKeyPem, certificate);
  } catch (err) {
    if (err instanceof CertificateError && err.code === 'ERR_CERT_KEY_MISMATCH') {
      throw new CertificateStoreError(
        'ERR_CERT_KEY_MISMATCH',
        `${keyFile} does not belong to the certificate ${certificatePath}`,
        keyFile,
      );
    }
    throw wrap(err, keyFile);
  }
  return { privateKeyPem, stored };
}

function readBytes(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new CertificateStoreError(
      'ERR_STATE_DAMAGED',
      `cannot read ${path}: ${(err as Error).message}`,
      path,
    );
  }
}

const readText = (path: string): string => readBytes(path).toString('utf8');

function parseFile(path: string): ParsedCertificate {
  const data = readBytes(path);
  try {
    return parseCertificate(data);
  } catch (err) {
    throw wrap(err, path);
  }
}

function assertPrivateKeyFileMode(path: string): void {
  if (process.platform === 'win32') return;
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new CertificateStoreError(
      'ERR_KEY_PERMISSIONS',
      `${path} is readable by others (mode ${mode.toString(8).padStart(4, '0')}); run chmod 600 on it`,
      path,
    );
  }
}

/** An error about the file `path`: a CertificateError keeps its code, anything else is a state error. */
function wrap(err: unknown, path: string): CertificateStoreError {
  const code = err instanceof CertificateError ? err.code : 'ERR_STATE_DAMAGED';
  return new CertificateStoreError(code, `${path}: ${(err as Error).message}`, path);
}
