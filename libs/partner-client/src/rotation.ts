/**
 * Certificate rotation by the partner itself, with Microsoft Graph's `addKey`/`removeKey`:
 *
 * 1. generate the next key pair and certificate (in memory);
 * 2. register it with `POST /applications/{objectId}/addKey`, authorized by a
 *    proof-of-possession JWT signed with the *current* key (aud
 *    `00000002-0000-0000-c000-000000000000`, iss = the application's object id, ≤ 10 minutes),
 *    using a Graph token the partner obtains itself (client credentials, its current certificate);
 * 3. only then write it to the certificate directory (the previous files kept in `previous/`)
 *    and switch the running token client to it (`onSwitch`), without a restart: tokens already
 *    issued stay valid, the next token request signs with the new key;
 * 4. after a grace period, `removeKey` the old certificate (by its keyId, remembered in
 *    `partner.key-id` from the previous rotation, or given).
 *
 * Where `addKey` is refused (401/403: the tenant does not let applications roll their own keys),
 * the next key pair is kept in `next/` and the `.cer` to send to the API owner is named.
 */
import { createSign, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  createSelfSignedCertificate,
  parseCertificate,
  writeFileAtomic,
  type RsaKeySize,
} from '@certflow/certs';
import type { ApiClient } from './api-client';
import { CertificateStore, type PartnerCredential } from './certificate-store';

export const PROOF_AUDIENCE = '00000002-0000-0000-c000-000000000000';
export const KEY_ID_FILE = 'partner.key-id';

/** The proof-of-possession JWT Graph's addKey/removeKey require (RS256, `x5t` = SHA-1 thumbprint). */
export function createProofOfPossession(
  applicationObjectId: string,
  credential: Pick<PartnerCredential, 'privateKeyPem' | 'certificate'>,
  now = new Date(),
): string {
  const nbf = Math.floor(now.getTime() / 1000);
  const header = { alg: 'RS256', typ: 'JWT', x5t: credential.certificate.thumbprints.sha1Base64Url };
  const claims = { aud: PROOF_AUDIENCE, iss: applicationObjectId, nbf, exp: nbf + 600, jti: randomUUID() };
  const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  const signature = createSign('RSA-SHA256').update(input).sign(credential.privateKeyPem);
  return `${input}.${signature.toString('base64url')}`;
}

export interface RotationOptions {
  store: CertificateStore;
  current: PartnerCredential;
  applicationObjectId: string;
  /** An ApiClient for the Graph base URL (e.g. https://graph.microsoft.com/v1.0) with the partner's own Graph token. */
  graph: ApiClient;
  commonName?: string;
  days?: number;
  /** RSA modulus length of the next key; default: the current key's. */
  keySize?: RsaKeySize;
  /** Encrypt the new key at rest. */
  passphrase?: string;
  /** Wait this long between the switch and removing the old certificate (default 0). */
  graceMs?: number;
  /** keyId of the current certificate; default: the one remembered in partner.key-id. */
  oldKeyId?: string;
  /** Called once the new certificate is registered and stored: switch the running client. */
  onSwitch?(next: PartnerCredential): void | Promise<void>;
  log?(message: string): void;
}

export type RotationResult =
  | {
      status: 'rotated';
      credential: PartnerCredential;
      keyId: string;
      /** keyId of the removed certificate; undefined when it was not known (see message). */
      removedKeyId?: string;
      message: string;
    }
  | { status: 'refused'; nextCerPath: string; message: string };

export class RotationError extends Error {
  override readonly name = 'RotationError';
}

/**
 * The next key's size: the current one's unless a larger one is asked for. A rotation never
 * weakens the key: a smaller size, or a current key above what can be generated (4096), is an error.
 */
function nextKeySize(current: PartnerCredential, requested: RsaKeySize | undefined): RsaKeySize {
  const bits = current.certificate.publicKey.asymmetricKeyDetails?.modulusLength ?? 2048;
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

export async function rotateCertificate(opts: RotationOptions): Promise<RotationResult> {
  const { store, current, applicationObjectId: objectId, graph } = opts;
  const log = opts.log ?? (() => {});
  const commonName =
    opts.commonName ?? /CN=([^,\n]+)/.exec(current.certificate.subject)?.[1] ?? 'certflow-partner';
  const keySize = nextKeySize(current, opts.keySize);
  const next = createSelfSignedCertificate({ commonName, days: opts.days ?? 365, keySize });
  const nextCert = parseCertificate(next.certificatePem);
  const displayName = `${commonName} ${nextCert.notBefore.toISOString().slice(0, 10)}`;

  const added = await graph.request(`/applications/${encodeURIComponent(objectId)}/addKey`, {
    method: 'POST',
    body: {
      keyCredential: {
        type: 'AsymmetricX509Cert',
        usage: 'Verify',
        key: nextCert.der.toString('base64'),
        displayName,
      },
      passwordCredential: null,
      proof: createProofOfPossession(objectId, current),
    },
  });
  if (added.status === 401 || added.status === 403) {
    const pending = new CertificateStore(join(store.directory, 'next'));
    pending.import({
      certificate: next.certificatePem,
      privateKeyPem: next.privateKeyPem,
      force: true,
      ...(opts.passphrase ? { passphrase: opts.passphrase } : {}),
    });
    const reason = graphMessage(added.body);
    return {
      status: 'refused',
      nextCerPath: pending.paths.cerPath,
      message: `addKey was refused (HTTP ${added.status}${reason ? `: ${reason}` : ''}); send ${pending.paths.cerPath} to the API owner to upload, then switch to the key pair in ${pending.directory}`,
    };
  }
  if (added.status < 200 || added.status >= 300) {
    throw new RotationError(
      `addKey failed: HTTP ${added.status}${graphMessage(added.body) ? `: ${graphMessage(added.body)}` : ''}`,
    );
  }
  const keyId = (added.body as { keyId?: unknown }).keyId;
  if (typeof keyId !== 'string') throw new RotationError('addKey answered without a keyId');
  log(`registered the new certificate ${nextCert.thumbprints.sha256Hex} as keyId ${keyId}`);

  // Keep the previous files, then write the new ones (key first, as create does).
  const keyIdPath = join(store.directory, KEY_ID_FILE);
  const oldKeyId =
    opts.oldKeyId ?? (existsSync(keyIdPath) ? readFileSync(keyIdPath, 'utf8').trim() : undefined);
  const previous = join(store.directory, 'previous');
  mkdirSync(previous, { recursive: true, mode: 0o700 });
  for (const [from, name] of [
    [store.paths.privateKeyPath, 'partner.key.pem'],
    [store.paths.certificatePath, 'partner.crt.pem'],
    [store.paths.cerPath, 'partner.cer'],
  ] as const) {
    if (existsSync(from))
      writeFileAtomic(join(previous, name), readFileSync(from), name.endsWith('.key.pem') ? 0o600 : 0o644);
  }
  const credential = store.import({
    certificate: next.certificatePem,
    privateKeyPem: next.privateKeyPem,
    force: true,
    ...(opts.passphrase ? { passphrase: opts.passphrase } : {}),
  });
  writeFileAtomic(keyIdPath, `${keyId}\n`, 0o644);
  await opts.onSwitch?.(credential);
  log('switched to the new certificate');

  if (!oldKeyId) {
    return {
      status: 'rotated',
      credential,
      keyId,
      message: `rotated to ${nextCert.thumbprints.sha256Hex} (keyId ${keyId}); the keyId of the old certificate ${current.certificate.thumbprints.sha1Hex} is not known here: ask the API owner to remove it, or run again with --old-key-id`,
    };
  }
  if (opts.graceMs) {
    log(
      `waiting ${opts.graceMs / 1000} s before removing the old certificate (other replicas switch meanwhile)`,
    );
    await new Promise((r) => setTimeout(r, opts.graceMs));
  }
  const removed = await graph.request(`/applications/${encodeURIComponent(objectId)}/removeKey`, {
    method: 'POST',
    body: { keyId: oldKeyId, proof: createProofOfPossession(objectId, credential) },
  });
  if (removed.status < 200 || removed.status >= 300) {
    throw new RotationError(
      `rotated to keyId ${keyId}, but removeKey ${oldKeyId} failed: HTTP ${removed.status}${graphMessage(removed.body) ? `: ${graphMessage(removed.body)}` : ''}`,
    );
  }
  log(`removed the old certificate (keyId ${oldKeyId})`);
  return {
    status: 'rotated',
    credential,
    keyId,
    removedKeyId: oldKeyId,
    message: `rotated to ${nextCert.thumbprints.sha256Hex} (keyId ${keyId}); removed keyId ${oldKeyId}`,
  };
}

function graphMessage(body: unknown): string | undefined {
  const message = (body as { error?: { message?: unknown } } | undefined)?.error?.message;
  return typeof message === 'string' ? message : undefined;
}
