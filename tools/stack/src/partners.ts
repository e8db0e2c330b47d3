/**
 * Steps 2 and 3 for each partner of the topology: its key pair and certificate, made by the
 * partner worker's own `cert create` in `<stateDir>/partners/<name>/` with the topology's
 * certificate settings (reused when already there), and the `.cer` it sends.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCertificate, writeFileAtomic } from '@certflow/certs';
import type { TopologyPartner } from '@certflow/topology';
import { ChildProcessError, runJsonCommand } from './child-service';
import { partnerDirectory } from './topology-sync';
import { appEntryPoint } from './workspace';

/** The partner worker's file for the keyId of its registered certificate (libs/partner-client rotation). */
export const PARTNER_KEY_ID_FILE = 'partner.key-id';

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
}

/** The partner's certificate from its directory, created there first if there is none. */
export async function ensurePartnerCertificate(
  stateDir: string,
  partner: TopologyPartner,
): Promise<PartnerCertificate> {
  const worker = appEntryPoint('partner-worker');
  const directory = partnerDirectory(stateDir, partner.name);
  const env = { ...process.env, PARTNER_CERT_DIR: directory };
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
  const { thumbprints } = parseCertificate(cer);
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
  };
}

/**
 * What the API owner tells the partner: the keyId of its registered certificate, so that the
 * partner's first `cert rotate` can remove it with removeKey (the partner cannot read the registration).
 */
export function writePartnerKeyId(directory: string, keyId: string): void {
  writeFileAtomic(join(directory, PARTNER_KEY_ID_FILE), `${keyId}\n`, 0o644);
}
