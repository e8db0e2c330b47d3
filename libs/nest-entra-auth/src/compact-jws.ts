/**
 * What the validator checks in a bearer token before any key is looked up or any signature is
 * verified: its size, its compact form (three base64url segments), its JOSE header (RS256,
 * `typ` JWT, a `kid`, and no parameter that could point the validator at another key:
 * `jku`, `x5u`, `jwk`, `x5c`, nor `crit`), and JSON without duplicate members. Cheap checks
 * first, so that hostile tokens cost no RSA work and no JWKS fetch.
 *
 * @example
 *   const { header, claims } = inspectCompactJws(token); // throws AuthFailure
 */
import { AuthFailure } from './auth-failure';
import { DuplicateMemberError, parseJsonObjectStrict } from './strict-json';

/** Entra access tokens are 1–3 KB; a much larger bearer value is refused before parsing. */
export const MAX_TOKEN_BYTES = 8 * 1024;

/** Header parameters Entra puts in access tokens (v1 adds `x5t`); anything else is refused. */
const ALLOWED_HEADER_PARAMETERS = new Set(['typ', 'alg', 'kid', 'x5t']);
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

export interface InspectedJws {
  header: { alg: 'RS256'; kid: string; typ: string; x5t?: string };
  claims: Record<string, unknown>;
}

export function inspectCompactJws(token: string): InspectedJws {
  if (token.length > MAX_TOKEN_BYTES)
    throw AuthFailure.unauthorized('ERR_TOKEN_TOO_LARGE', `token longer than ${MAX_TOKEN_BYTES} bytes`);
  const segments = token.split('.');
  if (segments.length !== 3)
    throw AuthFailure.unauthorized('ERR_TOKEN_MALFORMED', 'malformed token (not a compact JWS)');
  const [headerSegment, payloadSegment, signatureSegment] = segments as [string, string, string];
  if (!BASE64URL.test(headerSegment) || !BASE64URL.test(payloadSegment)) {
    throw AuthFailure.unauthorized('ERR_TOKEN_MALFORMED', 'malformed token (segments must be base64url)');
  }
  const header = decodeSegment(headerSegment, 'header');
  const algorithm = header['alg'];
  if (algorithm !== 'RS256')
    throw AuthFailure.unauthorized('ERR_TOKEN_ALGORITHM', 'algorithm not accepted (RS256 only)');
  if (signatureSegment.length === 0 || !BASE64URL.test(signatureSegment)) {
    throw AuthFailure.unauthorized('ERR_TOKEN_MALFORMED', 'malformed token (signature must be base64url)');
  }
  const unexpected = Object.keys(header).filter((name) => !ALLOWED_HEADER_PARAMETERS.has(name));
  if (unexpected.length > 0) {
    throw AuthFailure.unauthorized(
      'ERR_TOKEN_HEADER',
      `header parameter not accepted: ${unexpected.map((n) => n.slice(0, 16)).join(', ')}`,
    );
  }
  if (header['typ'] !== 'JWT') throw AuthFailure.unauthorized('ERR_TOKEN_HEADER', 'header typ must be "JWT"');
  const kid = header['kid'];
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > 128)
    throw AuthFailure.unauthorized('ERR_TOKEN_HEADER', 'header kid must name a signing key');
  if (header['x5t'] !== undefined && header['x5t'] !== kid)
    throw AuthFailure.unauthorized('ERR_TOKEN_HEADER', 'header x5t must equal kid');
  const claims = decodeSegment(payloadSegment, 'claims');
  return { header: header as InspectedJws['header'], claims };
}

function decodeSegment(segment: string, what: 'header' | 'claims'): Record<string, unknown> {
  const bytes = Buffer.from(segment, 'base64url');
  // Node's decoder skips what it cannot read; a segment that does not round-trip is not base64url.
  if (bytes.toString('base64url') !== segment)
    throw AuthFailure.unauthorized('ERR_TOKEN_MALFORMED', `malformed token (${what} is not base64url)`);
  try {
    return parseJsonObjectStrict(UTF8.decode(bytes));
  } catch (err) {
    if (err instanceof DuplicateMemberError)
      throw AuthFailure.unauthorized('ERR_TOKEN_MALFORMED', `malformed token (${what}: ${err.message})`);
    throw AuthFailure.unauthorized('ERR_TOKEN_MALFORMED', `malformed token (${what} is not a JSON object)`);
  }
}
