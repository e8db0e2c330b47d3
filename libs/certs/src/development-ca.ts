/**
 * The development CA: the one certificate every local client trusts
 * (`NODE_EXTRA_CA_CERTS=.certflow/ca/ca.crt.pem`, or passed explicitly as `ca`).
 * Created on first use in `<stateDir>/ca/`, reused afterwards; a damaged CA is an error, never replaced.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CertificateAndKey, createCertificateAuthority, issueCertificate } from './generate';
import { assertKeyMatchesCertificate, parseCertificate, ParsedCertificate } from './certificate';
import { writeFileAtomic, writePrivateKeyFile } from './files';
import { CertificateError } from './errors';

export const LOCAL_HOSTNAMES = ['localhost'];
export const LOCAL_IPS = ['127.0.0.1', '::1'];

export class DevelopmentCa {
  private constructor(
    readonly certificatePath: string,
    private readonly pair: CertificateAndKey,
    readonly certificate: ParsedCertificate,
  ) {}

  get certificatePem(): string {
    return this.pair.certificatePem;
  }

  /** Loads `<stateDir>/ca/ca.crt.pem` and its key, creating both if neither exists. */
  static loadOrCreate(stateDir: string): DevelopmentCa {
    const dir = join(stateDir, 'ca');
    const certPath = join(dir, 'ca.crt.pem');
    const keyPath = join(dir, 'ca.key.pem');
    const haveCert = existsSync(certPath);
    const haveKey = existsSync(keyPath);
    if (!haveCert && !haveKey) {
      const pair = createCertificateAuthority({
        commonName: 'certflow development CA',
        organization: 'certflow',
      });
      writePrivateKeyFile(keyPath, pair.privateKeyPem);
      writeFileAtomic(certPath, pair.certificatePem);
      return new DevelopmentCa(certPath, pair, parseCertificate(pair.certificatePem));
    }
    if (haveCert !== haveKey) {
      throw new CertificateError(
        'ERR_STATE_DAMAGED',
        `development CA in ${dir} is incomplete (${haveCert ? 'ca.key.pem' : 'ca.crt.pem'} missing); remove the directory to create a new CA`,
      );
    }
    const pair = {
      certificatePem: readFileSync(certPath, 'utf8'),
      privateKeyPem: readFileSync(keyPath, 'utf8'),
    };
    let certificate: ParsedCertificate;
    try {
      certificate = parseCertificate(pair.certificatePem);
      assertKeyMatchesCertificate(pair.privateKeyPem, certificate);
    } catch (err) {
      throw new CertificateError(
        'ERR_STATE_DAMAGED',
        `development CA in ${dir} is damaged: ${(err as Error).message}`,
      );
    }
    return new DevelopmentCa(certPath, pair, certificate);
  }

  /** A TLS server certificate for the local services (valid for localhost, 127.0.0.1 and ::1 by default). */
  issueServerCertificate(dnsNames = LOCAL_HOSTNAMES, ipAddresses = LOCAL_IPS): CertificateAndKey {
    return issueCertificate(this.pair, {
      commonName: dnsNames[0] ?? 'localhost',
      dnsNames,
      ipAddresses,
      days: 30,
    });
  }

  /** A client certificate signed by this CA (for mTLS tests). */
  issueClientCertificate(commonName: string, days = 365): CertificateAndKey {
    return issueCertificate(this.pair, { commonName, days });
  }
}
