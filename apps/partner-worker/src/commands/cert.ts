/** `cert create|show|export|import|csr`: the partner's key pair and certificate (`cert rotate`: cert-rotate.ts). */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { exportPkcs12, keyCredentialFor, writeFileAtomic } from '@certflow/certs';
import { parsePkcs11Uri } from '@certflow/pkcs11';
import {
  CertificateStore,
  DEFAULT_COMMON_NAME,
  DEFAULT_VALIDITY_DAYS,
  MAX_VALIDITY_DAYS,
  readCertificateDirectoryConfig,
  storeReadOptions,
  summarize,
  type CertificateDirectoryConfig,
  type CertificateSummary,
  type PartnerCredential,
} from '@certflow/partner-client';
import { command, JSON_OPTION, keySize, positiveInt, UsageError, type CliIo, type Emit } from './command';

const FORCE_OPTION = { force: { type: 'boolean', default: false } } as const;
export const COMMON_NAME_OPTION = { 'common-name': { type: 'string' } } as const;
export const KEY_SIZE_OPTION = { 'key-size': { type: 'string' } } as const;
const OUT_OPTION = { out: { type: 'string' } } as const;
const KEY_STORE_OPTION = { 'key-store': { type: 'string' } } as const;

/**
 * --key-store (else PARTNER_KEY_STORE): a PKCS#11 URI where the new key is made; undefined: a
 * key file. A passphrase for a key file makes no sense for a key in a token (its PIN guards it).
 */
function keyStoreOf(raw: string | undefined, config: CertificateDirectoryConfig): string | undefined {
  if (raw === 'file') return undefined; // a key file, on purpose (even with PARTNER_KEY_STORE set)
  if (raw !== undefined) {
    try {
      parsePkcs11Uri(raw);
    } catch (err) {
      // The parser's message never repeats the value: it may hold a PIN.
      throw new UsageError(
        `--key-store must be a PKCS#11 URI (pkcs11:token=…;object=…): ${(err as Error).message}`,
      );
    }
  }
  const keyStore = raw ?? config.keyStore;
  if (keyStore !== undefined && config.keyPassphrase !== undefined)
    throw new UsageError(
      'PARTNER_KEY_PASSPHRASE encrypts key files; a key in a PKCS#11 token is guarded by the token and its PIN: unset PARTNER_KEY_PASSPHRASE, or leave out --key-store/PARTNER_KEY_STORE',
    );
  return keyStore;
}

/** Reads the current certificate, runs `use`, and closes the token session of a key in a token. */
function withCredential<T>(config: CertificateDirectoryConfig, use: (credential: PartnerCredential) => T): T {
  const credential = new CertificateStore(config.certDir).read(storeReadOptions(config));
  try {
    return use(credential);
  } finally {
    credential.close();
  }
}

function keyLines(summary: CertificateSummary): string[] {
  const protection = summary.keyProtection;
  if (protection.store === 'pkcs11') {
    const a = protection.attributes;
    const guarded =
      a.sensitive && !a.extractable
        ? 'sensitive, not extractable: it cannot leave the token'
        : 'WARNING: the token lets this key be read out';
    const signsOnly = !a.canDecrypt && !a.canUnwrap && !a.canDerive && !a.canSignRecover;
    const use = signsOnly ? '' : '; WARNING: it can also decrypt or unwrap';
    const bound =
      a.binding === null
        ? '; not bound to a certificate directory: a rotation leaves it in the token'
        : a.modifiable
          ? '; WARNING: its attributes can be changed'
          : '';
    return [
      `  private key    in a PKCS#11 token: ${summary.keyUri} (${a.modulusBits} bits, ${guarded}${use}${bound})`,
    ];
  }
  const e = protection.encryption;
  const encryption =
    e === undefined
      ? 'not encrypted (set PARTNER_KEY_PASSPHRASE to encrypt new keys)'
      : 'kdf' in e
        ? `${e.kdf}-${e.prf.replace(/^hmacWith/, 'HMAC-')}, ${e.iterations.toLocaleString('en-US')} iterations, ${e.cipher}${e.strong ? '' : ': weaker than today\'s default; run "cert reencrypt"'}`
        : `${e.scheme}: weaker than today's default; run "cert reencrypt"`;
  return [
    `  private key    ${summary.privateKeyPath} (0600, keep it here)`,
    `  key encryption ${encryption}`,
  ];
}

type Change = 'created' | 'imported' | 'reencrypted' | undefined;

const HEADINGS: Record<NonNullable<Change>, string> = {
  created: 'Created a key pair and certificate in',
  imported: 'Imported the certificate and its key into',
  reencrypted: 'Encrypted the key again in',
};

function printCertificate(
  io: CliIo,
  summary: CertificateSummary,
  json: boolean,
  emit: Emit,
  change: Change,
): void {
  if (json) {
    emit({ event: 'certificate', created: change !== undefined, ...(change ? { change } : {}), ...summary });
    return;
  }
  io.stdout(
    [
      `${change ? HEADINGS[change] : 'Partner certificate in'} ${summary.certificateDirectory}`,
      `  subject        ${summary.subject}`,
      `  valid          ${summary.notBefore} to ${summary.notAfter} (${summary.status}, ${summary.daysUntilExpiry} days left)`,
      `  SHA-256        ${summary.thumbprints.sha256Hex}`,
      `  SHA-1 (x5t)    ${summary.thumbprints.sha1Hex}`,
      ...keyLines(summary),
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
  usage: `  cert create [--common-name CN] [--days N] [--key-size 2048|3072|4096]
              [--key-store pkcs11:URI|file] [--force] [--json]
                      generate the partner's RSA key pair and self-signed certificate in
                      PARTNER_CERT_DIR: partner.key.pem (0600), partner.crt.pem, partner.cer (DER,
                      the file to upload to the app registration); with --key-store (or
                      PARTNER_KEY_STORE) the key is made inside a PKCS#11 token and never leaves it;
                      --key-store file makes a key file even where the key was in a token`,
  options: {
    ...JSON_OPTION,
    ...FORCE_OPTION,
    ...COMMON_NAME_OPTION,
    days: { type: 'string' },
    ...KEY_SIZE_OPTION,
    ...KEY_STORE_OPTION,
  },
  async run({ io, values, emit, clock }) {
    const days = positiveInt('days', values.days, DEFAULT_VALIDITY_DAYS, MAX_VALIDITY_DAYS);
    const commonName = commonNameOf(values['common-name']) ?? DEFAULT_COMMON_NAME;
    const config = readCertificateDirectoryConfig(io.env, io.cwd);
    const keyStore = keyStoreOf(values['key-store'], config);
    const size = keySize(values['key-size']);
    const store = new CertificateStore(config.certDir);
    // A directory whose key is in a token does not fall back to a key file without being told.
    if (keyStore === undefined && values['key-store'] !== 'file' && values.force && store.keyInToken())
      throw new Error(
        'the certificate in use keeps its key inside a PKCS#11 token: give --key-store pkcs11:… to make the new key in a token too, or --key-store file to go back to a key file on purpose',
      );
    // Valid from the earlier of the real time and this process's (possibly shifted) clock, so that
    // it is valid at both: Entra judges it by the real time, a test emulator by the shifted one.
    const now = new Date(Math.min(Date.now(), clock.nowMs()));
    const options = { commonName, days, now, force: values.force, ...(size ? { keySize: size } : {}) };
    const credential = keyStore
      ? await store.createInToken({ ...options, keyStore, env: config.pkcs11Env })
      : store.create({ ...options, ...(config.keyPassphrase ? { passphrase: config.keyPassphrase } : {}) });
    try {
      printCertificate(io, summarize(credential), values.json, emit, 'created');
    } finally {
      credential.close();
    }
    return 0;
  },
});

export const certShow = command({
  name: 'cert show',
  usage: `  cert show [--json]  show the certificate, its thumbprints and expiry`,
  options: { ...JSON_OPTION },
  run({ io, values, emit, clock }) {
    const summary = withCredential(readCertificateDirectoryConfig(io.env, io.cwd), (c) =>
      summarize(c, clock.now()),
    );
    printCertificate(io, summary, values.json, emit, undefined);
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

/** The bytes `cert export --format` writes, and the file mode they need. */
function exportData(
  credential: PartnerCredential,
  format: string,
  env: CliIo['env'],
): { data: string | Buffer; mode: number } {
  switch (format) {
    case 'cer':
      return { data: credential.certificate.der, mode: 0o644 };
    case 'pem':
      return { data: credential.certificate.pem, mode: 0o644 };
    case 'keycredential':
      return { data: `${JSON.stringify(keyCredentialFor(credential.certificate), null, 2)}\n`, mode: 0o644 };
    default: {
      if (credential.privateKeyPem === undefined)
        throw new Error(
          `the private key is inside a PKCS#11 token (${credential.keyUri}) and cannot leave it, so there is no PFX to make: export the public certificate with --format cer, pem or keycredential`,
        );
      const password = env['PARTNER_PFX_PASSWORD'];
      if (!password)
        throw new Error('PARTNER_PFX_PASSWORD: is required for --format pfx (the PFX holds the private key)');
      const data = exportPkcs12({
        privateKeyPem: credential.privateKeyPem,
        certificatePem: credential.certificate.pem,
        password,
        friendlyName: credential.certificate.subject,
      });
      return { data, mode: 0o600 };
    }
  }
}

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
    const config = readCertificateDirectoryConfig(io.env, io.cwd);
    const { data, mode } = withCredential(config, (credential) => exportData(credential, format, io.env));
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
                      (PARTNER_IMPORT_KEY_PASSPHRASE); without --key, the key from "cert csr"
                      (in a file, or in the PKCS#11 token of "cert csr --key-store")`,
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
    const config = readCertificateDirectoryConfig(io.env, io.cwd);
    const store = new CertificateStore(config.certDir);
    const inToken =
      config.keyStore !== undefined
        ? 'PARTNER_KEY_STORE keeps'
        : store.keyInToken()
          ? 'The certificate in use keeps'
          : undefined;
    if (inToken && (values.pfx || values.key))
      throw new Error(
        `${inToken} this partner's keys inside a PKCS#11 token, where they are made and never leave; a key that comes from a ${values.pfx ? 'PFX' : 'file'} has existed outside it, so certflow does not take it. Make the key in the token with "cert csr --key-store …", have your CA sign the CSR, then "cert import --cert <issued certificate>" (to go back to a key file on purpose: "cert create --force --key-store file")`,
      );
    const importKeyPassphrase = io.env['PARTNER_IMPORT_KEY_PASSPHRASE'] || undefined;
    const credential = store.import({
      ...(values.pfx
        ? { pfx: readInput(io, 'pfx', values.pfx), pfxPassword: io.env['PARTNER_PFX_PASSWORD'] ?? '' }
        : { certificate: readInput(io, 'cert', values.cert!) }),
      ...(values.key ? { privateKeyPem: readInput(io, 'key', values.key).toString('utf8') } : {}),
      ...(importKeyPassphrase ? { keyPassphrase: importKeyPassphrase } : {}),
      ...(config.keyPassphrase ? { passphrase: config.keyPassphrase } : {}),
      env: config.pkcs11Env,
      force: values.force,
    });
    try {
      printCertificate(io, summarize(credential), values.json, emit, 'imported');
    } finally {
      credential.close();
    }
    return 0;
  },
});

export const certCsr = command({
  name: 'cert csr',
  usage: `  cert csr [--common-name CN] [--key-size N] [--key-store pkcs11:URI] [--out FILE] [--json]
                      a new key (kept as partner.pending.key.pem, or made in the PKCS#11 token of
                      --key-store/PARTNER_KEY_STORE) and a CSR to send to your CA;
                      then "cert import --cert issued.crt"`,
  options: { ...COMMON_NAME_OPTION, ...OUT_OPTION, ...JSON_OPTION, ...KEY_SIZE_OPTION, ...KEY_STORE_OPTION },
  async run({ io, values, emit }) {
    const commonName = commonNameOf(values['common-name']) ?? DEFAULT_COMMON_NAME;
    const config = readCertificateDirectoryConfig(io.env, io.cwd);
    const keyStore = keyStoreOf(values['key-store'], config);
    const size = keySize(values['key-size']);
    const store = new CertificateStore(config.certDir);
    const result = keyStore
      ? await store.createCsrInToken({
          commonName,
          keyStore,
          env: config.pkcs11Env,
          ...(size ? { keySize: size } : {}),
        })
      : store.createCsr({
          commonName,
          ...(size ? { keySize: size } : {}),
          ...(config.keyPassphrase ? { passphrase: config.keyPassphrase } : {}),
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

export const certReencrypt = command({
  name: 'cert reencrypt',
  usage: `  cert reencrypt [--json]
                      encrypt the key file again with today's key derivation (PBKDF2-HMAC-SHA256,
                      600,000 iterations) under PARTNER_KEY_PASSPHRASE, or under
                      PARTNER_NEW_KEY_PASSPHRASE to change it: a new generation with the same
                      certificate, switched to in one step; the old key file is deleted`,
  options: { ...JSON_OPTION },
  run({ io, values, emit }) {
    const config = readCertificateDirectoryConfig(io.env, io.cwd);
    const passphrase = io.env['PARTNER_NEW_KEY_PASSPHRASE'] || config.keyPassphrase;
    if (passphrase === undefined)
      throw new UsageError(
        'cert reencrypt needs PARTNER_KEY_PASSPHRASE (and PARTNER_NEW_KEY_PASSPHRASE to change it)',
      );
    if (passphrase.length < 8)
      throw new UsageError('PARTNER_NEW_KEY_PASSPHRASE: must have at least 8 characters');
    const credential = new CertificateStore(config.certDir).reencrypt(storeReadOptions(config), passphrase);
    printCertificate(io, summarize(credential), values.json, emit, 'reencrypted');
    return 0;
  },
});
