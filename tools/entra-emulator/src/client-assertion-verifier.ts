/**
 * Client authentication with a JWT client assertion (RFC 7523, `private_key_jwt`), checked
 * the way Entra ID checks it: the header's `x5t` (SHA-1) or `x5t#S256` (SHA-256) picks one
 * of the application's registered certificates (no `kid` needed), then signature,
 * `iss` = `sub` = client id, `aud` = this tenant's token endpoint, and the time window.
 */
import { compactVerify } from 'jose';
import type { ParsedCertificate } from '@certflow/certs';
import { entraErrors, shown } from './entra-errors';
import { certificateOfKey, keyCredentialValidAt } from './key-credentials';
import type { StoredApplication, StoredKeyCredential } from './state-store';

export const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ALGORITHMS = ['RS256', 'PS256'];

export interface AssertionCheck {
  app: StoredApplication;
  /** Token endpoint URLs this assertion may be addressed to (GUID and domain forms). */
  audiences: string[];
  now: Date;
  clockSkewSeconds: number;
  /** Opt-in: refuse a `jti` seen before. Off by default because MSAL reuses one assertion for ~10 minutes. */
  replayGuard?: ReplayGuard;
  /**
   * Told which certificate the assertion named (sign-in log), before it is checked: the
   * registered one's SHA-1 thumbprint and key id, or for an unregistered one the thumbprint
   * the header carried in hex (SHA-1 from `x5t` when present, else SHA-256 from `x5t#S256`).
   */
  onCredential?: (named: { thumbprint: string; keyId?: string }) => void;
}

export interface VerifiedAssertion {
  keyCredential: StoredKeyCredential;
  claims: Record<string, unknown>;
}

export async function verifyClientAssertion(
  assertion: string,
  check: AssertionCheck,
): Promise<VerifiedAssertion> {
  const { header, claims } = decodeUnverified(assertion);
  const alg = header.alg;
  if (typeof alg !== 'string' || !ALGORITHMS.includes(alg)) {
    throw entraErrors.malformedAssertion(
      `The algorithm '${shown(alg)}' is not supported for client assertions; use RS256 or PS256.`,
    );
  }
  const x5tS256 = thumbprintHeader(header['x5t#S256']);
  const x5t = thumbprintHeader(header.x5t);
  if (typeof x5tS256 !== 'string' && typeof x5t !== 'string') {
    throw entraErrors.malformedAssertion('No certificate thumbprint specified in token header.');
  }
  // A thumbprint header that is present must be a string: a malformed one is refused, never skipped.
  for (const [name, value] of [
    ['x5t', header.x5t],
    ['x5t#S256', x5tS256],
  ] as const) {
    if (value !== undefined && typeof value !== 'string')
      throw entraErrors.malformedAssertion(`The '${name}' header of the client assertion is not a string.`);
  }

  const match = findKey(
    check.app,
    typeof x5t === 'string' ? x5t : undefined,
    typeof x5tS256 === 'string' ? x5tS256 : undefined,
  );
  const usedThumbprint = thumbprintHex(typeof x5tS256 === 'string' ? x5tS256 : (x5t as string));
  check.onCredential?.(
    match
      ? { thumbprint: match.certificate.thumbprints.sha1Hex, keyId: match.credential.keyId }
      : { thumbprint: thumbprintHex(typeof x5t === 'string' ? x5t : (x5tS256 as string)) },
  );
  if (!match) throw entraErrors.keyNotFound(usedThumbprint, check.app.appId);
  const window = keyWindow(match.credential);
  if (!keyCredentialValidAt(match.credential, check.now))
    throw entraErrors.keyExpired(usedThumbprint, window);

  try {
    await compactVerify(assertion, match.certificate.publicKey, { algorithms: [alg] });
  } catch {
    throw entraErrors.signatureInvalid(usedThumbprint, window);
  }

  const clientId = check.app.appId;
  if (claims.iss !== claims.sub || typeof claims.sub !== 'string' || claims.sub.toLowerCase() !== clientId) {
    throw entraErrors.subjectMismatch(clientId);
  }
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (!audiences.some((aud) => typeof aud === 'string' && check.audiences.includes(aud)))
    throw entraErrors.wrongAudience();

  const nowSeconds = check.now.getTime() / 1000;
  const nbf = typeof claims.nbf === 'number' ? claims.nbf : 0;
  const exp = typeof claims.exp === 'number' ? claims.exp : undefined;
  if (
    exp === undefined ||
    nowSeconds > exp + check.clockSkewSeconds ||
    nowSeconds < nbf - check.clockSkewSeconds
  ) {
    throw entraErrors.assertionTimeRange(
      check.now,
      new Date(nbf * 1000),
      exp === undefined ? undefined : new Date(exp * 1000),
    );
  }
  if (check.replayGuard) {
    // Strict mode: every assertion is single-use, so one without a jti cannot be accepted.
    if (typeof claims.jti !== 'string' || claims.jti === '')
      throw entraErrors.malformedAssertion('The client assertion has no jti claim; strict mode needs one.');
    if (!check.replayGuard.firstUse(`${clientId}/${claims.jti}`, exp, nowSeconds))
      throw entraErrors.malformedAssertion(
        `The assertion with jti '${shown(claims.jti)}' has already been used.`,
      );
  }
  return { keyCredential: match.credential, claims };
}

function decodeUnverified(assertion: string): {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
} {
  const parts = assertion.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]*$/.test(p)) || parts[2] === '') {
    throw entraErrors.malformedAssertion('The client assertion is not a signed compact JWT.');
  }
  const header = parseJsonObject(parts[0]!);
  const claims = parseJsonObject(parts[1]!);
  if (!header || !claims)
    throw entraErrors.malformedAssertion('The client assertion header or payload is not a JSON object.');
  return { header, claims };
}

function parseJsonObject(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Every thumbprint the client sent must point at the same registered certificate. */
function findKey(
  app: StoredApplication,
  x5t: string | undefined,
  x5tS256: string | undefined,
): { credential: StoredKeyCredential; certificate: ParsedCertificate } | undefined {
  for (const credential of app.keyCredentials) {
    const certificate = cachedCertificate(credential.key);
    if (x5tS256 !== undefined && certificate.thumbprints.sha256Base64Url !== x5tS256) continue;
    if (x5t !== undefined && certificate.thumbprints.sha1Base64Url !== x5t) continue;
    return { credential, certificate };
  }
  return undefined;
}

const certificates = new Map<string, ParsedCertificate>();
function cachedCertificate(key: string): ParsedCertificate {
  let cert = certificates.get(key);
  if (!cert) {
    if (certificates.size > 1000) certificates.clear();
    cert = certificateOfKey(key);
    certificates.set(key, cert);
  }
  return cert;
}

/**
 * A thumbprint header as unpadded base64url. Entra ID also reads it padded or in standard base64:
 * MSAL for Python (1.x) pads its `x5t`; MSAL for Go (1.x) sends `x5t#S256` as standard base64
 * with `=` (`Credential.JWT` in its accesstokens package), and so does MSAL4J (1.26.1); Microsoft's
 * certificate-credentials page was corrected to say base64 (MicrosoftDocs/azure-docs PR 95348).
 * Anything else is left as sent.
 */
function thumbprintHeader(value: unknown): unknown {
  return typeof value === 'string' && /^[A-Za-z0-9+/_-]+={0,2}$/.test(value)
    ? value.replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_')
    : value;
}

/** What is shown for a thumbprint header that is not the base64url of a SHA-1 or SHA-256 digest. */
export const NOT_A_THUMBPRINT = '(not a thumbprint)';

/**
 * Entra shows the thumbprint the client used in hex: only a 20-byte (SHA-1) or 32-byte (SHA-256)
 * value is one; anything else is never echoed (it could be any text, or kilobytes of it).
 */
function thumbprintHex(value: string): string {
  return /^(?:[A-Za-z0-9_-]{27}|[A-Za-z0-9_-]{43})$/.test(value)
    ? Buffer.from(value, 'base64url').toString('hex').toUpperCase()
    : NOT_A_THUMBPRINT;
}

function keyWindow(cred: StoredKeyCredential): string {
  return `Start=${entraKeyDate(cred.startDateTime)}, End=${entraKeyDate(cred.endDateTime)}`;
}

/** `MM/dd/yyyy HH:mm:ss`, the format of Entra's "Found key" text. */
function entraKeyDate(iso: string): string {
  const d = new Date(iso);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCMonth() + 1)}/${p(d.getUTCDate())}/${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}`;
}

/** Remembers used `jti`s until their assertion expires (strict mode only). */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();

  firstUse(id: string, exp: number, nowSeconds: number): boolean {
    for (const [key, expiry] of this.seen) if (expiry < nowSeconds) this.seen.delete(key);
    if (this.seen.has(id)) return false;
    this.seen.set(id, exp);
    return true;
  }
}
