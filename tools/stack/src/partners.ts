/**
 * Steps 2 and 3 for each partner of the topology: its key pair and certificate, made by the
 * partner worker's own `cert create` in `<stateDir>/partners/<name>/` with the topology's
 * certificate settings (reused when already there), and the `.cer` it sends.
 */
import { CLOCK_FILE_ENV, CLOCK_OFFSET_ENV } from '@certflow/clock';
import { readFileSync } from 'node:fs';
import { parseCertificate, type ParsedCertificate } from '@certflow/certs';
import { CertificateStore, KEY_ID_FILE } from '@certflow/partner-client';
import type { PartnerCertificateSettings, TopologyPartner } from '@certflow/topology';
import { ChildProcessError, runJsonCommand } from './child-service';
import { partnerDirectory } from './topology-sync';
import { appEntryPoint } from './workspace';

/** The partner worker's file for the keyId of its registered certificate (a link into the current generation). */
export const PARTNER_KEY_ID_FILE = KEY_ID_FILE;

export interface PartnerCertificate {
  partner: TopologyPartner;
  directory: string;
  privateKeyPath: string;
  cerPath: string;
  /** The `.cer` (DER) the partner sends to the API owner. */
  cer: Buffer;
  subject: string;
  notAfter: string;
  sha1Hex: string;
  sha256Hex: string;
  created: boolean;
  /** How the existing certificate differs from the topology's settings, e.g. `key size 2048, the topology says 3072`. */
  differences: string[];
  /** The partner worker command that rolls the certificate to the topology's settings, when they differ. */
  rotateCommand?: string;
}

/** The partner's certificate from its directory, created there first if there is none. */
export async function ensurePartnerCertificate(
  stateDir: string,
  partner: TopologyPartner,
  clockFile?: string,
): Promise<PartnerCertificate> {
  const worker = appEntryPoint('partner-worker');
  const directory = partnerDirectory(stateDir, partner.name);
  // On the stack's clock, or on the real time: a shifted clock is never inherited from elsewhere.
  const env: NodeJS.ProcessEnv = { ...process.env, PARTNER_CERT_DIR: directory, [CLOCK_FILE_ENV]: clockFile };
  delete env[CLOCK_OFFSET_ENV];
  let created = false;
  let result = await runJsonCommand(worker, ['cert', 'show', '--json'], env);
  if (result.code !== 0) {
    const { commonName, keySize, validityDays } = partner.certificate;
    result = await runJsonCommand(
      worker,
      [
        'cert',
        'create',
        '--common-name',
        commonName,
        '--key-size',
        String(keySize),
        '--days',
        String(validityDays),
        '--json',
      ],
      env,
    );
    created = true;
  }
  const info = result.events[0];
  if (result.code !== 0 || !info)
    throw new ChildProcessError(
      `the partner worker could not create the certificate of partner ${partner.name}`,
      result.output,
    );
  const cerPath = String(info.cerPath);
  const cer = readFileSync(cerPath);
  const parsed = parseCertificate(cer);
  const { thumbprints } = parsed;
  const differences = settingsDifferences(parsed, partner.certificate);
  return {
    partner,
    directory,
    privateKeyPath: String(info.privateKeyPath),
    cerPath,
    cer,
    subject: String(info.subject),
    notAfter: String(info.notAfter),
    sha1Hex: thumbprints.sha1Hex,
    sha256Hex: thumbprints.sha256Hex,
    created,
    differences,
    ...(differences.length ? { rotateCommand: rotateCommand(partner) } : {}),
  };
}

/** The certificate's common name, key size and validity (in whole days) where they are not the settings'. */
export function settingsDifferences(cert: ParsedCertificate, settings: PartnerCertificateSettings): string[] {
  const differences: string[] = [];
  const commonName = /^CN=(.*)$/m.exec(cert.subject)?.[1];
  if (commonName !== settings.commonName)
    differences.push(
      `common name ${JSON.stringify(commonName ?? cert.subject)}, the topology says ${JSON.stringify(settings.commonName)}`,
    );
  const keySize = cert.publicKey.asymmetricKeyDetails?.modulusLength;
  if (keySize !== settings.keySize)
    differences.push(`key size ${keySize ?? 'unknown'}, the topology says ${settings.keySize}`);
  const days = Math.round((cert.notAfter.getTime() - cert.notBefore.getTime()) / 86_400_000);
  if (days !== settings.validityDays)
    differences.push(`validity ${days} days, the topology says ${settings.validityDays}`);
  return differences;
}

/** `cert rotate` makes, registers and switches to a certificate with these settings, then removes the old one. */
function rotateCommand({ name, certificate }: TopologyPartner): string {
  const cn = /^[\w.@-]+$/.test(certificate.commonName)
    ? certificate.commonName
    : `'${certificate.commonName.replace(/'/g, `'\\''`)}'`;
  return `npm run partner -- --as ${name} cert rotate --common-name ${cn} --key-size ${certificate.keySize} --days ${certificate.validityDays}`;
}

/**
 * What the API owner tells the partner: the keyId of its registered certificate, so that the
 * partner's first `cert rotate` can remove it with removeKey (the partner cannot read the
 * registration). It goes with the certificate in use (its generation's partner.key-id).
 */
export function writePartnerKeyId(directory: string, keyId: string): void {
  new CertificateStore(directory).setCurrentKeyId(keyId);
}
