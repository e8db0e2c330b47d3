/**
 * The keys of a rotation: the next key pair and its self-signed certificate (in memory for a
 * key file; inside the same PKCS#11 token as the current key for a key in a token, signed
 * through the token). What a rotation deletes from the token, and when: rotation-cleanup.ts.
 */
import { randomBytes } from 'node:crypto';
import {
  createSelfSignedCertificate,
  createSelfSignedCertificateWithSigner,
  parseCertificate,
  type ParsedCertificate,
  type RsaKeySize,
} from '@certflow/certs';
import { formatPkcs11Uri, parsePkcs11Uri } from '@certflow/pkcs11';
import { directoryBinding, openToken } from './key-in-token';
import type { KeyMaterial, PartnerCredential } from './certificate-store';

export class RotationError extends Error {
  override readonly name = 'RotationError';
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The next key's size: the current one's unless a larger one is asked for. A rotation never
 * weakens the key: a smaller size, or a current key above what can be generated (4096), is an error.
 */
export function nextKeySize(current: ParsedCertificate, requested: RsaKeySize | undefined): RsaKeySize {
  const bits = current.publicKey.asymmetricKeyDetails?.modulusLength ?? 2048;
  if (bits > 4096)
    throw new RotationError(
      `the current key has ${bits} bits; rotation makes keys of at most 4096 bits and never a weaker one: rotate with a key made elsewhere (cert import)`,
    );
  const size = requested ?? (bits > 3072 ? 4096 : bits > 2048 ? 3072 : 2048);
  if (size < bits)
    throw new RotationError(
      `--key-size ${size} is smaller than the current key (${bits} bits): a rotation never weakens the key`,
    );
  return size;
}

const stamp = (at: Date) =>
  at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');

const ROTATION_SUFFIX = /-r(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const labelBase = (label: string | undefined) => (label ?? 'certflow-partner').replace(ROTATION_SUFFIX, '');

/**
 * The next key's label in the token: the current label without an earlier rotation's suffix, plus
 * `-r<time>`, that time at least a second after the current label's (a rotation of a key made in
 * the same second would otherwise want the current key's label).
 */
export function nextKeyLabel(currentLabel: string | undefined, at: Date): string {
  const m = ROTATION_SUFFIX.exec(currentLabel ?? '');
  const after = m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]! + 1) : 0;
  return `${labelBase(currentLabel)}-r${stamp(new Date(Math.max(at.getTime(), after)))}`;
}

/** Could a rotation of the key labelled `currentLabel` have labelled its next key `label`? */
export function isNextKeyLabelOf(label: string, currentLabel: string | undefined): boolean {
  return ROTATION_SUFFIX.test(label) && labelBase(label) === labelBase(currentLabel);
}

export const commonNameOf = (certificate: ParsedCertificate): string =>
  /CN=([^,\n]+)/.exec(certificate.subject)?.[1] ?? 'certflow-partner';

/** The length of a rotation's new CKA_ID (random). */
export const PLANNED_ID_BYTES = 16;

/** Where and under which label and CKA_ID (hex) the next key is made in the token: journaled before it is. */
export interface PlannedTokenKey {
  tokenUri: string;
  label: string;
  id: string;
}

/**
 * The next key pair and its certificate. For a key in a token, `plan` is given the new key's
 * label and id first (the journal records them, so an orphan can be found and deleted), then the
 * key is generated in the token, bound to the certificate directory `directory`.
 */
export async function makeNextKey(
  current: PartnerCredential,
  opts: { directory: string; commonName: string; days: number; keySize: RsaKeySize; env: Env },
  plan: (planned: PlannedTokenKey) => void,
  log: (message: string) => void,
): Promise<{ certificate: ParsedCertificate; key: KeyMaterial }> {
  const options = { commonName: opts.commonName, days: opts.days };
  if (current.keyUri === undefined) {
    const pair = createSelfSignedCertificate({ ...options, keySize: opts.keySize });
    return {
      certificate: parseCertificate(pair.certificatePem),
      key: { kind: 'file', privateKeyPem: pair.privateKeyPem },
    };
  }
  const uri = parsePkcs11Uri(current.keyUri);
  const binding = directoryBinding(opts.directory);
  const planned: PlannedTokenKey = {
    tokenUri: formatPkcs11Uri({ ...uri, object: undefined, id: undefined, type: undefined }),
    label: nextKeyLabel(uri.object, new Date()),
    id: randomBytes(PLANNED_ID_BYTES).toString('hex'),
  };
  plan(planned);
  const { token } = openToken(planned.tokenUri, opts.env);
  try {
    const keyUri = token.generateRsaKeyPair({
      label: planned.label,
      id: Buffer.from(planned.id, 'hex'),
      bits: opts.keySize,
      binding,
    });
    log(`generated the next key in the token: label ${planned.label}, id ${planned.id}`);
    const pem = await createSelfSignedCertificateWithSigner(token.signer(parsePkcs11Uri(keyUri)), options);
    return { certificate: parseCertificate(pem), key: { kind: 'pkcs11', uri: keyUri } };
  } finally {
    token.close();
  }
}
