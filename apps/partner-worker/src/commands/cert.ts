/** `cert create|show|export|import|csr`: the partner's key pair and certificate (`cert rotate`: cert-rotate.ts). */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { exportPkcs12, keyCredentialFor, writeFileAtomic } from '@certflow/certs';
import {
  CertificateStore,
  DEFAULT_COMMON_NAME,
  DEFAULT_VALIDITY_DAYS,
  MAX_VALIDITY_DAYS,
  readCertificateDirectoryConfig,
  summarize,
  type CertificateSummary,
} from '@certflow/partner-client';
import { command, JSON_OPTION, keySize, positiveInt, UsageError, type CliIo, type Emit } from './command';

const FORCE_OPTION = { force: { type: 'boolean', default: false } } as const;
export const COMMON_NAME_OPTION = { 'common-name': { type: 'string' } } as const;
export const KEY_SIZE_OPTION = { 'key-size': { type: 'string' } } as const;
const OUT_OPTION = { out: { type: 'string' } } as const;

function printCertificate(
  io: CliIo,
  summary: CertificateSummary,
  json: boolean,
  emit: Emit,
  created: boolean,
): void {
  if (json) {
    emit({ event: 'certificate', created, ...summary });
    return;
  }
  io.stdout(
    [
      created
        ? `Created a key pair and certificate in ${summary.certificateDirectory}`
        : `Partner certificate in ${summary.certificateDirectory}`,
      `  subject        ${summary.subject}`,
      `  valid          ${summary.notBefore} to ${summary.notAfter} (${summary.status}, ${summary.daysUntilExpiry} days left)`,
      `  SHA-256        ${summary.thumbprints.sha256Hex}`,
      `  SHA-1 (x5t)    ${summary.thumbprints.sha1Hex}`,
      `  private key    ${summary.privateKeyPath} (0600, keep it here)`,
      `  certificate    ${summary.certificatePath}`,
      `  upload this    ${summary.cerPath} (DER, public key only)`,
    ].join('\n'),
  );
}

function commonNameOf(raw: string | undefined): string | undefined {
  if (raw !== undefined && raw.trim() === '') throw new UsageError('--common-name must not be empty');
  return raw;
}

function outputPath(io: CliIo, file: string): string {
  return isAbsolute(file) ? file : resolvePath(io.cwd, file);
}

function readInput(io: CliIo, flag: string, file: string): Buffer {
  const path = outputPath(io, file);
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`--${flag} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export const certCreate = command({
  name: 'cert create',
  usage: `  cert create [--common-name CN] [--days N] [--key-size 2048|3072|4096] [--force] [--json]
                      generate the partner's RSA key pair and self-signed certificate in
                      PARTNER_CERT_DIR: partner.key.pem (0600), partner.crt.pem, partner.cer (DER,
                      the file to upload to the app registration)`,
  options: {
    ...JSON_OPTION,
    ...FORCE_OPTION,
    ...COMMON_NAME_OPTION,
    days: { type: 'string' },
    ...KEY_SIZE_OPTION,
  },
  run({ io, values, emit }) {
    const days = positiveInt('days', values.days, DEFAULT_VALIDITY_DAYS, MAX_VALIDITY_DAYS);
    const commonName = commonNameOf(values['common-name']);
    const { certDir, keyPassphrase } = readCertificateDirectoryConfig(io.env, io.cwd);
    const size = keySize(values['key-size']);
    const credential = new CertificateStore(certDir).create({
      commonName: commonName ?? DEFAULT_COMMON_NAME,
      days,
      ...(size ? { keySize: size } : {}),
      force: values.force,
      ...(keyPassphrase ? { passphrase: keyPassphrase } : {}),
    });
    printCertificate(io, summarize(credential), values.json, emit, true);
    return 0;
  },
});

export const certShow = command({
  name: 'cert show',
  usage: `  cert show [--json]  show the certificate, its thumbprints and expiry`,
  options: { ...JSON_OPTION },
  run({ io, values, emit }) {
    const { certDir, keyPassphrase } = readCertificateDirectoryConfig(io.env, io.cwd);
    const summary = summarize(new CertificateStore(certDir).read(keyPassphrase));
    printCertificate(io, summary, values.json, emit, false);
    if (summary.status !== 'valid') {
      io.stderr(
        `partner-worker: error: the certificate is ${summary.status} (valid ${summary.notBefore} to ${summary.notAfter})`,
      );
      return 1;
    }
    return 0;
  },
});

const EXPORT_FORMATS = ['cer', 'pem', 'pfx', 'keycredential'] as const;

export const certExport = command({
  name: 'cert export',
  usage: `  cert export --format cer|pem|pfx|keycredential [--out FILE]
                      export the public certificate (.cer DER, PEM), the keyCredential JSON
                      Graph expects, or a PFX with the key (password from PARTNER_PFX_PASSWORD);
                      cer and pfx need --out; pem and keycredential go to stdout without it`,
  options: { format: { type: 'string' }, ...OUT_OPTION },
  run({ io, values }) {
    const format = values.format;
    if (!format || !(EXPORT_FORMATS as readonly string[]).includes(format))
      throw new UsageError(`--format must be one of ${EXPORT_FORMATS.join(', ')}`);
    if ((format === 'cer' || format === 'pfx') && !values.out)
      throw new UsageError(`--format ${format} is binary: give --out FILE`);
    const { certDir, keyPassphrase } = readCertificateDirectoryConfig(io.env, io.cwd);
    const credential = new CertificateStore(certDir).read(keyPassphrase);
    let data: string | Buffer;
    let mode = 0o644;
    switch (format) {
      case 'cer':
        data = credential.certificate.der;
        break;
      case 'pem':
        data = credential.certificate.pem;
        break;
      case 'keycredential':
        data = `${JSON.stringify(keyCredentialFor(credential.certificate), null, 2)}\n`;
        break;
      default: {
        const password = io.env['PARTNER_PFX_PASSWORD'];
        if (!password)
          throw new Error(
            'PARTNER_PFX_PASSWORD: is required for --format pfx (the PFX holds the private key)',
          );
        data = exportPkcs12({
          privateKeyPem: credential.privateKeyPem,
          certificatePem: credential.certificate.pem,
          password,
          friendlyName: credential.certificate.subject,
        });
        mode = 0o600;
      }
    }
    if (values.out) {
      const path = outputPath(io, values.out);
      writeFileAtomic(path, data, mode);
      io.stderr(`partner-worker: wrote ${format} to ${path}`);
    } else io.stdout(String(data).replace(/\n$/, ''));
    return 0;
  },
});

export const certImport = command({
  name: 'cert import',
  usage: `  cert import (--pfx FILE | --cert FILE [--key FILE]) [--force] [--json]
                      take a certificate made elsewhere: a PFX (PARTNER_PFX_PASSWORD), or a
                      PEM/DER certificate with its PKCS#1/PKCS#8/encrypted PKCS#8 key
                      (PARTNER_IMPORT_KEY_PASSPHRASE); without --key, the key from "cert csr"`,
  options: {
    pfx: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    ...FORCE_OPTION,
    ...JSON_OPTION,
  },
  run({ io, values, emit }) {
    if (!values.pfx === !values.cert)
      throw new UsageError('cert import needs either --pfx FILE or --cert FILE');
    if (values.pfx && values.key) throw new UsageError('--key goes with --cert, not with --pfx');
    const { certDir, keyPassphrase } = readCertificateDirectoryConfig(io.env, io.cwd);
    const importKeyPassphrase = io.env['PARTNER_IMPORT_KEY_PASSPHRASE'] || undefined;
    const credential = new CertificateStore(certDir).import({
      ...(values.pfx
        ? { pfx: readInput(io, 'pfx', values.pfx), pfxPassword: io.env['PARTNER_PFX_PASSWORD'] ?? '' }
        : { certificate: readInput(io, 'cert', values.cert!) }),
      ...(values.key ? { privateKeyPem: readInput(io, 'key', values.key).toString('utf8') } : {}),
      ...(importKeyPassphrase ? { keyPassphrase: importKeyPassphrase } : {}),
      ...(keyPassphrase ? { passphrase: keyPassphrase } : {}),
      force: values.force,
    });
    printCertificate(io, summarize(credential), values.json, emit, true);
    return 0;
  },
});

export const certCsr = command({
  name: 'cert csr',
  usage: `  cert csr [--common-name CN] [--key-size N] [--out FILE] [--json]
                      a new key (kept as partner.pending.key.pem) and a CSR to send to your CA;
                      then "cert import --cert issued.crt"`,
  options: { ...COMMON_NAME_OPTION, ...OUT_OPTION, ...JSON_OPTION, ...KEY_SIZE_OPTION },
  run({ io, values, emit }) {
    const commonName = commonNameOf(values['common-name']);
    const { certDir, keyPassphrase } = readCertificateDirectoryConfig(io.env, io.cwd);
    const size = keySize(values['key-size']);
    const result = new CertificateStore(certDir).createCsr({
      commonName: commonName ?? DEFAULT_COMMON_NAME,
      ...(size ? { keySize: size } : {}),
      ...(keyPassphrase ? { passphrase: keyPassphrase } : {}),
    });
    if (values.out) writeFileAtomic(outputPath(io, values.out), result.csrPem, 0o644);
    if (values.json)
      emit({
        event: 'csr',
        csrPath: result.csrPath,
        pendingKeyPath: result.pendingKeyPath,
        csr: result.csrPem,
      });
    else
      io.stdout(
        `${result.csrPem.trimEnd()}\nSend this CSR (${result.csrPath}) to your CA; the new key waits in ${result.pendingKeyPath}.\nThen: cert import --cert <issued certificate>`,
      );
    return 0;
  },
});
