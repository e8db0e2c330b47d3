/**
 * The run-time half of `validate-jwt`: checks one compact JWT against signing keys from
 * OpenID metadata and the policy's rules, and names the failure with APIM's
 * `LastError.Reason` values (TokenSignatureInvalid, TokenExpired, …).
 *
 * Only signed tokens with the asymmetric algorithms APIM lists (RS256, PS256, RS512) pass;
 * `alg: none`, HS* (including "HS256 keyed with the RSA public key") and anything else fail
 * before a key is even looked up. Messages follow the shape APIM documents:
 * "<message from the JWT library>. Access denied." (see README.md).
 */
import {
  decodeProtectedHeader,
  errors as joseErrors,
  importJWK,
  JWK,
  JWTPayload,
  jwtVerify,
  ProtectedHeaderParameters,
} from 'jose';
import type { OpenIdMetadata } from './openid-metadata-cache';
import type { VerifiedTokenCache, VerifiedTokenEntry } from '@certflow/claims';

export const ALLOWED_ALGORITHMS = ['RS256', 'PS256', 'RS512'] as const;
/** Accepted only when the policy has symmetric `<issuer-signing-keys>`, and verified only with those keys. */
export const SYMMETRIC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
/** The `issuer` of the fixed key set made from `<issuer-signing-keys>` (it names no issuer). */
export const STATIC_KEYS_ISSUER = '';

export type JwtFailureReason =
  | 'TokenNotPresent'
  | 'JwtInvalid'
  | 'TokenSignatureInvalid'
  | 'TokenSignatureKeyNotFound'
  | 'TokenExpired'
  | 'TokenAudienceNotAllowed'
  | 'TokenIssuerNotAllowed'
  | 'TokenClaimNotFound'
  | 'TokenClaimValueNotAllowed';

export class JwtValidationFailure extends Error {
  constructor(
    readonly reason: JwtFailureReason,
    message: string,
  ) {
    super(message);
    this.name = 'JwtValidationFailure';
  }
}

export interface RequiredClaim {
  name: string;
  match: 'all' | 'any';
  separator: string | undefined;
  values: string[];
}

export interface JwtRules {
  requireExpirationTime: boolean;
  clockSkewSeconds: number;
  /** The policy has symmetric `<issuer-signing-keys>`: HS256/384/512 tokens are accepted, checked with those keys only. */
  symmetricKeys: boolean;
  /** Explicit `<issuers>`; when undefined the issuers of the OpenID metadata are required. */
  issuers: string[] | undefined;
  /** `<audiences>`; when undefined `aud` is not checked here (use required-claims). */
  audiences: string[] | undefined;
  requiredClaims: RequiredClaim[];
}

export interface ValidatedJwt {
  header: ProtectedHeaderParameters;
  claims: JWTPayload;
}

/** Supplies the current key sets; `refresh` asks for new ones after an unknown `kid` (may decline). */
export interface SigningKeySource {
  current(): Promise<OpenIdMetadata[]>;
  /** The current key sets when every one is cached and fresh (no waiting), else undefined. */
  peek?(): OpenIdMetadata[] | undefined;
  refresh(): Promise<OpenIdMetadata[] | undefined>;
}

type VerificationKey = Awaited<ReturnType<typeof importJWK>>;

const importedKeys = new WeakMap<JWK, Map<string, VerificationKey>>();

async function importKey(jwk: JWK, alg: string): Promise<VerificationKey> {
  let byAlg = importedKeys.get(jwk);
  if (!byAlg) importedKeys.set(jwk, (byAlg = new Map()));
  let key = byAlg.get(alg);
  if (!key) {
    key = await importJWK(jwk, alg);
    byAlg.set(alg, key);
  }
  return key;
}

function candidateKeys(metadata: OpenIdMetadata[], header: ProtectedHeaderParameters): JWK[] {
  const alg = header.alg!;
  // The key type follows from the algorithm, never the other way round (no HS256 keyed with an RSA key).
  // A key without a kid (an issuer-signing-keys <key> without id) is tried for any kid, as .NET does.
  const kty = alg.startsWith('HS') ? 'oct' : 'RSA';
  return metadata
    .flatMap((m) => m.jwks.keys)
    .filter(
      (k) =>
        k.kty === kty &&
        (k.use === undefined || k.use === 'sig') &&
        (k.alg === undefined || k.alg === alg) &&
        (header.kid === undefined || k.kid === undefined || k.kid === header.kid),
    );
}

const iso = (seconds: number): string => new Date(seconds * 1000).toISOString();

/**
 * Validates `token`. With a `cache` (one per policy instance: `VerifiedTokenCache` of @certflow/claims) a
 * token this instance verified before against the same key sets skips the signature check;
 * its lifetime is still checked against `nowMs` with the clock skew, as below.
 */
export async function validateJwt(
  token: string,
  keys: SigningKeySource,
  rules: JwtRules,
  nowMs: number,
  cache?: VerifiedTokenCache<ValidatedJwt>,
): Promise<ValidatedJwt> {
  if (token.split('.').length !== 3) throw new JwtValidationFailure('JwtInvalid', 'Invalid JWT.');
  const useCache = cache !== undefined && cache.maxEntries > 0;
  let metadata: OpenIdMetadata[] | undefined;
  if (useCache) {
    metadata = await currentKeys(keys);
    const hit = cache.lookup(token, { keys: metadata });
    if (hit) return checkCachedLifetime(hit, token, rules, nowMs, cache);
  }
  let header: ProtectedHeaderParameters;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new JwtValidationFailure('JwtInvalid', 'Invalid JWT.');
  }
  const alg = header.alg;
  const allowed: readonly string[] = rules.symmetricKeys
    ? [...ALLOWED_ALGORITHMS, ...SYMMETRIC_ALGORITHMS]
    : ALLOWED_ALGORITHMS;
  if (typeof alg !== 'string' || !allowed.includes(alg)) {
    throw new JwtValidationFailure(
      'TokenSignatureInvalid',
      `Signature validation failed. Algorithm '${String(alg)}' is not supported; expected one of ${allowed.join(', ')}. Access denied.`,
    );
  }

  metadata ??= await currentKeys(keys);
  let candidates = candidateKeys(metadata, header);
  if (candidates.length === 0) {
    const refreshed = await keys.refresh();
    if (refreshed) {
      metadata = refreshed;
      candidates = candidateKeys(metadata, header);
    }
  }
  if (candidates.length === 0) {
    throw new JwtValidationFailure(
      'TokenSignatureKeyNotFound',
      `Signature validation failed. Unable to match key: kid: '${header.kid ?? ''}'. Access denied.`,
    );
  }

  const options = {
    algorithms: [alg],
    clockTolerance: rules.clockSkewSeconds,
    currentDate: new Date(nowMs),
    requiredClaims: rules.requireExpirationTime ? ['exp'] : [],
  };
  let claims: JWTPayload | undefined;
  let lastError: unknown;
  for (const jwk of candidates) {
    try {
      claims = (await jwtVerify(token, await importKey(jwk, alg), options)).payload;
      break;
    } catch (err) {
      lastError = err;
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) continue; // try the next key (rollover)
      break;
    }
  }
  if (!claims) throw mapJoseError(lastError, nowMs);

  const tokenIssuer = claims.iss;
  // Without <issuers>, the issuers of the openid-config documents; a policy with only
  // <issuer-signing-keys> and no <issuers> does not check `iss` (as APIM: the key is the trust).
  const validIssuers =
    rules.issuers ?? metadata.filter((m) => m.issuer !== STATIC_KEYS_ISSUER).map((m) => m.issuer);
  const checkIssuer = rules.issuers !== undefined || validIssuers.length > 0;
  if (checkIssuer && (typeof tokenIssuer !== 'string' || !validIssuers.includes(tokenIssuer))) {
    throw new JwtValidationFailure(
      'TokenIssuerNotAllowed',
      `Issuer validation failed. Issuer: '${String(tokenIssuer ?? '')}'. Did not match: validIssuers: '${validIssuers.join(', ')}'. Access denied.`,
    );
  }
  if (rules.audiences) {
    const tokenAudiences =
      claims.aud === undefined ? [] : Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!tokenAudiences.some((a) => rules.audiences!.includes(a))) {
      throw new JwtValidationFailure(
        'TokenAudienceNotAllowed',
        `Audience validation failed. Audiences: '${tokenAudiences.join(', ')}'. Did not match: validAudiences: '${rules.audiences.join(', ')}'. Access denied.`,
      );
    }
  }
  checkRequiredClaims(claims, rules.requiredClaims);
  const validated: ValidatedJwt = { header, claims };
  if (useCache)
    cache.store(token, validated, {
      expiresAtSeconds: claims.exp,
      notBeforeSeconds: claims.nbf,
      keys: metadata,
    });
  return validated;
}

/**
 * The cache-hit path without waiting for anything: when the key sets are cached and fresh and
 * this policy instance verified `token` before against them, its result (lifetime checked
 * again). Undefined means "go the long way": a miss, no cache, or keys that need fetching.
 */
export function cachedValidation(
  token: string,
  keys: SigningKeySource,
  rules: JwtRules,
  nowMs: number,
  cache?: VerifiedTokenCache<ValidatedJwt>,
): ValidatedJwt | undefined {
  if (!cache || cache.maxEntries === 0 || !keys.peek) return undefined;
  const metadata = keys.peek();
  if (!metadata) return undefined;
  // A miss is counted by validateJwt's own lookup, which follows.
  const hit = cache.lookup(token, { keys: metadata, countMiss: false });
  return hit ? checkCachedLifetime(hit, token, rules, nowMs, cache) : undefined;
}

/** Same checks, same order and same arithmetic as jose's jwtVerify (exp <= now - skew is expired). */
function checkCachedLifetime(
  hit: VerifiedTokenEntry<ValidatedJwt>,
  token: string,
  rules: JwtRules,
  nowMs: number,
  cache: VerifiedTokenCache<ValidatedJwt>,
): ValidatedJwt {
  const now = Math.floor(nowMs / 1000);
  const { expiresAtSeconds: exp, notBeforeSeconds: nbf } = hit;
  if (exp <= now - rules.clockSkewSeconds) {
    cache.delete(token);
    throw expired(exp, nowMs);
  }
  if (nbf !== undefined && nbf > now + rules.clockSkewSeconds) throw notYetValid(nbf, nowMs);
  return hit.value;
}

async function currentKeys(keys: SigningKeySource): Promise<OpenIdMetadata[]> {
  try {
    return await keys.current();
  } catch (err) {
    throw new JwtValidationFailure(
      'TokenSignatureKeyNotFound',
      `Signature validation failed. Unable to obtain signing keys: ${(err as Error).message}. Access denied.`,
    );
  }
}

function expired(exp: number, nowMs: number): JwtValidationFailure {
  return new JwtValidationFailure(
    'TokenExpired',
    `Lifetime validation failed. The token is expired. ValidTo: '${iso(exp)}', Current time: '${new Date(nowMs).toISOString()}'. Access denied.`,
  );
}

function notYetValid(nbf: number, nowMs: number): JwtValidationFailure {
  return new JwtValidationFailure(
    'JwtInvalid',
    `Lifetime validation failed. The token is not yet valid. ValidFrom: '${iso(nbf)}', Current time: '${new Date(nowMs).toISOString()}'.`,
  );
}

function mapJoseError(err: unknown, nowMs: number): JwtValidationFailure {
  if (err instanceof joseErrors.JWTExpired) {
    if (typeof err.payload.exp === 'number') return expired(err.payload.exp, nowMs);
    return new JwtValidationFailure(
      'TokenExpired',
      `Lifetime validation failed. The token is expired. ValidTo: '?', Current time: '${new Date(nowMs).toISOString()}'. Access denied.`,
    );
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    if (err.claim === 'exp')
      return new JwtValidationFailure(
        'JwtInvalid',
        'Lifetime validation failed. The token is missing an Expiration Time.',
      );
    if (err.claim === 'nbf') {
      if (typeof err.payload.nbf === 'number') return notYetValid(err.payload.nbf, nowMs);
      return new JwtValidationFailure(
        'JwtInvalid',
        `Lifetime validation failed. The token is not yet valid. ValidFrom: '?', Current time: '${new Date(nowMs).toISOString()}'.`,
      );
    }
    return new JwtValidationFailure('JwtInvalid', `Invalid JWT: claim '${err.claim}' ${err.reason}.`);
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return new JwtValidationFailure(
      'TokenSignatureInvalid',
      'Signature validation failed. The signature does not match any of the issuer signing keys. Access denied.',
    );
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
    return new JwtValidationFailure(
      'TokenSignatureInvalid',
      `Signature validation failed. ${(err as Error).message}. Access denied.`,
    );
  }
  return new JwtValidationFailure('JwtInvalid', 'Invalid JWT.');
}

function claimValues(value: unknown, separator: string | undefined): string[] {
  const raw = Array.isArray(value) ? value : [value];
  const strings = raw.map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
  return separator ? strings.flatMap((s) => s.split(separator)) : strings;
}

function checkRequiredClaims(claims: JWTPayload, required: RequiredClaim[]): void {
  const missing = required.filter((c) => claims[c.name] === undefined).map((c) => c.name);
  if (missing.length > 0) {
    throw new JwtValidationFailure(
      'TokenClaimNotFound',
      `JWT token is missing the following claims: ${missing.join(', ')}. Access denied.`,
    );
  }
  for (const claim of required) {
    if (claim.values.length === 0) continue;
    const present = claimValues(claims[claim.name], claim.separator);
    const ok =
      claim.match === 'all'
        ? claim.values.every((v) => present.includes(v))
        : claim.values.some((v) => present.includes(v));
    if (!ok) {
      throw new JwtValidationFailure(
        'TokenClaimValueNotAllowed',
        `Claim ${claim.name} value of ${present.join(', ')} is not allowed. Access denied.`,
      );
    }
  }
}
