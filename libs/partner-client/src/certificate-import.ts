/**
 * Certificates issued elsewhere. `cert csr`: a new key and a CSR to send to a CA; the key waits
 * in PARTNER_CERT_DIR as partner.pending.key.pem (0600), or, made in a PKCS#11 token, as its URI
 * in partner.pending.key.p11, until `cert import` brings the issued certificate; the certificate
 * in use is untouched until then. `cert import` also takes a certificate with its key, or a PFX.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  assertCertificateValidAt,
  assertKeyMatchesCertificate,
  createCsr,
  createCsrWithSigner,
  encryptPrivateKey,
  importPkcs12,
  parseCertificate,
  readPrivateKey,
  writeFileAtomic,
  writePrivateKeyFile,
  type ParsedCertificate,
  type RsaKeySize,
} from '@certflow/certs';
import { CertificateStoreError, type KeyMaterial, type StoreReadOptions } from './credential';
import { assertSignerMatches, withNewTokenKey, withTokenKey } from './key-in-token';

/** `cert csr` leaves the new key here (or its token reference) until the CA's certificate is imported. */
export const PENDING_KEY_FILE = 'partner.pending.key.pem';
export const PENDING_KEY_REFERENCE_FILE = 'partner.pending.key.p11';
export const CSR_FILE = 'partner.csr.pem';

export interface ImportOptions {
  /** A PFX/PKCS#12 bundle and its password… */
  pfx?: Uint8Array;
  pfxPassword?: string;
  /** …or a certificate (PEM or DER) with its key (PKCS#1/PKCS#8/encrypted PKCS#8 PEM). */
  certificate?: Uint8Array | string;
  /** Without it (and without pfx), the pending key from `cert csr` is used. */
  privateKeyPem?: string;
  keyPassphrase?: string;
  force?: boolean;
  /** Encrypt the stored key at rest. */
  passphrase?: string;
  /** The PKCS#11 settings of a pending key that `cert csr` made in a token. */
  env?: StoreReadOptions['env'];
  now?: Date;
}

export interface PendingCsr {
  csrPem: string;
  csrPath: string;
  pendingKeyPath: string;
}

/** A new key in a file (encrypted under `passphrase` if given) and its CSR, in `directory`. */
export function createPendingCsr(
  directory: string,
  opts: { commonName: string; organization?: string; passphrase?: string; keySize?: RsaKeySize },
): PendingCsr {
  const { csrPem, privateKeyPem } = createCsr({
    commonName: opts.commonName,
    ...(opts.organization ? { organization: opts.organization } : {}),
    ...(opts.keySize ? { keySize: opts.keySize } : {}),
  });
  const pendingKeyPath = join(directory, PENDING_KEY_FILE);
  writePrivateKeyFile(
    pendingKeyPath,
    opts.passphrase ? encryptPrivateKey(privateKeyPem, opts.passphrase) : privateKeyPem,
  );
  rmSync(join(directory, PENDING_KEY_REFERENCE_FILE), { force: true });
  return { csrPem, csrPath: writeCsr(directory, csrPem), pendingKeyPath };
}

/** A new key made in the token `keyStore` names, and its CSR signed through the token; a failure deletes the key again. */
export function createPendingCsrInToken(
  directory: string,
  opts: {
    keyStore: string;
    commonName: string;
    organization?: string;
    keySize?: RsaKeySize;
    env?: StoreReadOptions['env'];
  },
): Promise<PendingCsr> {
  return withNewTokenKey(opts.keyStore, directory, opts.env, opts.keySize ?? 2048, async (keyUri, signer) => {
    const csrPem = await createCsrWithSigner(signer, {
      commonName: opts.commonName,
      ...(opts.organization ? { organization: opts.organization } : {}),
    });
    const pendingKeyPath = join(directory, PENDING_KEY_REFERENCE_FILE);
    writeFileAtomic(pendingKeyPath, `${keyUri}\n`, 0o600);
    rmSync(join(directory, PENDING_KEY_FILE), { force: true });
    return { csrPem, csrPath: writeCsr(directory, csrPem), pendingKeyPath };
  });
}

function writeCsr(directory: string, csrPem: string): string {
  const csrPath = join(directory, CSR_FILE);
  writeFileAtomic(csrPath, csrPem, 0o644);
  return csrPath;
}

/**
 * What `import` brings: a PFX with its password, or a certificate with its key (or with the
 * pending key of `cert csr` in `directory`, in a file or in a token, and the file that holds it).
 * Checked before anything is written: the password, that the key belongs to the certificate,
 * that it is valid now.
 */
export function readImport(
  directory: string,
  opts: ImportOptions,
): { certificate: ParsedCertificate; key: KeyMaterial; pending: string | undefined } {
  let certificate: ParsedCertificate;
  let key: KeyMaterial;
  let pending: string | undefined;
  if (opts.pfx) {
    if (opts.certificate || opts.privateKeyPem)
      throw new TypeError('import either a PFX or a certificate with its key, not both');
    const contents = importPkcs12(opts.pfx, opts.pfxPassword ?? '');
    certificate = parseCertificate(contents.certificatePem);
    key = { kind: 'file', privateKeyPem: contents.privateKeyPem };
  } else {
    if (!opts.certificate) throw new TypeError('import needs a PFX or a certificate');
    certificate = parseCertificate(opts.certificate);
    if (opts.privateKeyPem !== undefined) {
      key = { kind: 'file', privateKeyPem: readPrivateKey(opts.privateKeyPem, opts.keyPassphrase) };
    } else {
      ({ key, pending } = readPendingKey(directory, opts.passphrase ?? opts.keyPassphrase));
    }
  }
  if (key.kind === 'file') assertKeyMatchesCertificate(key.privateKeyPem, certificate);
  else withTokenKey(key.uri, opts.env, (signer) => assertSignerMatches(signer, certificate, key.uri));
  assertCertificateValidAt(certificate, opts.now ?? new Date());
  return { certificate, key, pending };
}

/** The pending key of `cert csr` in `directory` (a token reference first) and the file that holds it. */
function readPendingKey(
  directory: string,
  passphrase: string | undefined,
): { key: KeyMaterial; pending: string } {
  const reference = join(directory, PENDING_KEY_REFERENCE_FILE);
  if (existsSync(reference))
    return { key: { kind: 'pkcs11', uri: readFileSync(reference, 'utf8').trim() }, pending: reference };
  const pending = join(directory, PENDING_KEY_FILE);
  if (!existsSync(pending))
    throw new CertificateStoreError(
      'ERR_NO_PENDING_KEY',
      `no key given and no pending key from "cert csr" in ${directory}`,
      pending,
    );
  const privateKeyPem = readPrivateKey(readFileSync(pending, 'utf8'), passphrase);
  return { key: { kind: 'file', privateKeyPem }, pending };
}

/** Once its certificate is imported: the pending key's file (`pending`) and the CSR go. */
export function removePendingKey(directory: string, pending: string): void {
  rmSync(pending, { force: true });
  rmSync(join(directory, CSR_FILE), { force: true });
}
