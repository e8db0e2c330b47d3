/**
 * The proof-of-possession JWT that Microsoft Graph's `addKey` and `removeKey` require: signed
 * with the private key of a certificate currently registered on the application, `aud`
 * `00000002-0000-0000-c000-000000000000`, `iss` the application's object id, and a validity
 * window (`nbf` to `exp`) of at most 10 minutes. The header's `x5t` (or `x5t#S256`) names the
 * signing certificate, as in a client assertion.
 *
 * @example
 *   const proof = await createProofOfPossession(app.id, { certificatePem, privateKeyPem });
 *   await graph.addKey(app.id, newCer, proof);
 */
import { randomUUID } from 'node:crypto';
import { compactVerify, importPKCS8, SignJWT } from 'jose';
import { parseCertificate, type CertificateAndKey, type ParsedCertificate } from '@certflow/certs';
import { GraphError } from './graph-errors';
import { certificateOfKey, keyCredentialValidAt } from './key-credentials';
import type { StoredApplication, StoredKeyCredential } from './state-store';

/** The audience Graph requires in the proof (Azure AD Graph's app id, as Microsoft's docs say). */
export const PROOF_AUDIENCE = '00000002-0000-0000-c000-000000000000';
/** Longest window between `nbf` and `exp` that Graph accepts. */
export const PROOF_MAX_LIFETIME_SECONDS = 600;

export interface ProofOptions {
  /** RS256 with `x5t` (SHA-1, as Microsoft's sample) by default; PS256 with `x5t#S256` also works. */
  alg?: 'RS256' | 'PS256';
  /** Validity in seconds (default and maximum 600). */
  lifetimeSeconds?: number;
  now?: Date;
}

/** Builds the proof for `addKey`/`removeKey` on the application with this object id, signed by `certificate`. */
export async function createProofOfPossession(
  applicationObjectId: string,
  certificate: CertificateAndKey,
  options: ProofOptions = {},
): Promise<string> {
  const alg = options.alg ?? 'RS256';
  const { thumbprints } = parseCertificate(certificate.certificatePem);
  const nbf = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const lifetime = Math.min(
    options.lifetimeSeconds ?? PROOF_MAX_LIFETIME_SECONDS,
    PROOF_MAX_LIFETIME_SECONDS,
  );
  return new SignJWT({
    aud: PROOF_AUDIENCE,
    iss: applicationObjectId,
    nbf,
    exp: nbf + lifetime,
    jti: randomUUID(),
  })
    .setProtectedHeader({
      alg,
      typ: 'JWT',
      ...(alg === 'PS256' ? { 'x5t#S256': thumbprints.sha256Base64Url } : { x5t: thumbprints.sha1Base64Url }),
    })
    .sign(await importPKCS8(certificate.privateKeyPem, alg));
}

/** Graph answers a bad proof with 401 `Authentication_MissingOrMalformed`; the emulator adds why. */
const invalidProof = (why: string) =>
  new GraphError(
    401,
    'Authentication_MissingOrMalformed',
    `Access Token missing or malformed. The proof is invalid: ${why}`,
  );

/** Checks a proof for `app`; resolves with the registered credential that signed it. */
export async function verifyProofOfPossession(
  proof: unknown,
  app: StoredApplication,
  now: Date,
  clockSkewSeconds: number,
): Promise<StoredKeyCredential> {
  if (typeof proof !== 'string' || proof === '')
    throw new GraphError(
      403,
      'Authorization_RequestDenied',
      "Insufficient privileges to complete the operation. Property 'proof' is required.",
    );
  const parts = proof.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p)))
    throw invalidProof('not a signed compact JWT.');
  const header = parseSegment(parts[0]!);
  const claims = parseSegment(parts[1]!);
  if (!header || !claims) throw invalidProof('the header or payload is not a JSON object.');
  const alg = header.alg;
  if (alg !== 'RS256' && alg !== 'PS256')
    throw invalidProof(`alg '${String(alg).slice(0, 20)}' is not RS256 or PS256.`);
  const x5t = typeof header.x5t === 'string' ? header.x5t : undefined;
  const x5tS256 = typeof header['x5t#S256'] === 'string' ? header['x5t#S256'] : undefined;
  if (x5t === undefined && x5tS256 === undefined)
    throw invalidProof('the header names no certificate (x5t or x5t#S256).');

  let found: { credential: StoredKeyCredential; certificate: ParsedCertificate } | undefined;
  for (const credential of app.keyCredentials) {
    const certificate = certificateOfKey(credential.key);
    if (x5tS256 !== undefined && certificate.thumbprints.sha256Base64Url !== x5tS256) continue;
    if (x5t !== undefined && certificate.thumbprints.sha1Base64Url !== x5t) continue;
    found = { credential, certificate };
    break;
  }
  if (!found) throw invalidProof('it is not signed by a certificate registered on this application.');
  if (!keyCredentialValidAt(found.credential, now))
    throw invalidProof('the certificate that signed it is outside its validity period.');
  try {
    await compactVerify(proof, found.certificate.publicKey, { algorithms: [alg] });
  } catch {
    throw invalidProof('the signature does not verify with the certificate named in its header.');
  }
  if (claims.aud !== PROOF_AUDIENCE) throw invalidProof(`aud must be '${PROOF_AUDIENCE}'.`);
  if (typeof claims.iss !== 'string' || claims.iss.toLowerCase() !== app.id)
    throw invalidProof("iss must be the application's object id.");
  const { nbf, exp } = claims;
  if (typeof nbf !== 'number' || typeof exp !== 'number') throw invalidProof('nbf and exp are required.');
  if (exp - nbf > PROOF_MAX_LIFETIME_SECONDS)
    throw invalidProof(`exp may be at most ${PROOF_MAX_LIFETIME_SECONDS} seconds after nbf.`);
  const nowSeconds = now.getTime() / 1000;
  if (nowSeconds < nbf - clockSkewSeconds || nowSeconds > exp + clockSkewSeconds)
    throw invalidProof('it is not within its valid time range.');
  return found.credential;
}

function parseSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
