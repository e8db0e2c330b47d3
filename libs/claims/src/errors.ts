/**
 * Errors raised while reading Entra access-token claims. Callers branch on `code`
 * (and `claim`), never on the message text.
 *
 * @example
 *   try { parseAccessTokenClaims(payload) } catch (e) { if (e instanceof ClaimsError && e.code === 'ERR_CLAIM_MISSING') … }
 */
export type ClaimsErrorCode =
  /** The payload is not a JSON object. */
  | 'ERR_CLAIMS_NOT_OBJECT'
  /** A required claim is absent. */
  | 'ERR_CLAIM_MISSING'
  /** A claim is present but its type or value is not one Entra ID issues. */
  | 'ERR_CLAIM_INVALID'
  /** `ver` is neither "1.0" nor "2.0". */
  | 'ERR_TOKEN_VERSION_UNSUPPORTED'
  /** The token was issued for a user (delegated), not for an application. */
  | 'ERR_NOT_APP_TOKEN';

export class ClaimsError extends Error {
  override readonly name = 'ClaimsError';

  constructor(
    readonly code: ClaimsErrorCode,
    /** The claim at fault, when there is one. */
    readonly claim: string | undefined,
    message: string,
  ) {
    super(message);
  }

  static notObject(actual: unknown): ClaimsError {
    return new ClaimsError(
      'ERR_CLAIMS_NOT_OBJECT',
      undefined,
      `access-token payload must be a JSON object, got ${describe(actual)}`,
    );
  }

  static missing(claim: string, why = ''): ClaimsError {
    return new ClaimsError('ERR_CLAIM_MISSING', claim, `claim "${claim}" is required${why ? ` ${why}` : ''}`);
  }

  static invalid(claim: string, expected: string, actual: unknown): ClaimsError {
    return new ClaimsError(
      'ERR_CLAIM_INVALID',
      claim,
      `claim "${claim}" must be ${expected}, got ${describe(actual)}`,
    );
  }

  static unsupportedVersion(actual: unknown): ClaimsError {
    return new ClaimsError(
      'ERR_TOKEN_VERSION_UNSUPPORTED',
      'ver',
      `claim "ver" must be "1.0" or "2.0", got ${describe(actual)}`,
    );
  }

  static notAppToken(claim: string, actual: unknown): ClaimsError {
    return new ClaimsError(
      'ERR_NOT_APP_TOKEN',
      claim,
      `not an app-only token: claim "${claim}" is ${describe(actual)}`,
    );
  }
}

/** A short description of a value for error messages: claim values are not secrets, but keep them bounded. */
function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}
