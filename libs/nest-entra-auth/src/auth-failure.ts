/**
 * Why a request was refused, as a stable code for the response body and the log. Built from
 * whatever passport-jwt, jsonwebtoken, jwks-rsa or the claims mapping reported.
 */
import {
  ForbiddenException,
  HttpException,
  ServiceUnavailableException,
  UnauthorizedException,
} from '@nestjs/common';
import { ClaimsError } from '@certflow/claims';

export type AuthFailureCode =
  | 'ERR_TOKEN_MISSING'
  | 'ERR_TOKEN_MALFORMED'
  | 'ERR_TOKEN_TOO_LARGE'
  | 'ERR_TOKEN_HEADER'
  | 'ERR_TOKEN_VERSION'
  | 'ERR_TOKEN_EXPIRED'
  | 'ERR_TOKEN_NOT_YET_VALID'
  | 'ERR_TOKEN_ALGORITHM'
  | 'ERR_TOKEN_SIGNING_KEY_UNKNOWN'
  | 'ERR_TOKEN_SIGNATURE'
  | 'ERR_TOKEN_AUDIENCE'
  | 'ERR_TOKEN_ISSUER'
  | 'ERR_TOKEN_TENANT'
  | 'ERR_TOKEN_CLAIMS'
  | 'ERR_TOKEN_INVALID'
  | 'ERR_SIGNING_KEYS_UNAVAILABLE'
  | 'ERR_ISSUER_METADATA_UNAVAILABLE'
  | 'ERR_APP_ROLE_MISSING'
  | 'ERR_CLIENT_NOT_ALLOWED'
  | 'ERR_CLIENT_CERTIFICATE_REQUIRED';

/** jwks-rsa found no key with the token's `kid` (or refused to look again, rate limited). */
export class UnknownSigningKeyError extends Error {
  override readonly name = 'UnknownSigningKeyError';
}

/** The JWKS endpoint could not be read: a problem on our side, not the caller's. */
export class SigningKeysUnavailableError extends Error {
  override readonly name = 'SigningKeysUnavailableError';
}

/** A refusal: thrown inside the strategy, or built from what passport reported, then sent as JSON. */
export class AuthFailure extends Error {
  override readonly name = 'AuthFailure';

  private constructor(
    readonly status: 401 | 403 | 503,
    readonly code: AuthFailureCode,
    message: string,
    /** RFC 6750 challenge. */
    readonly wwwAuthenticate: string | undefined,
  ) {
    super(message);
  }

  static unauthorized(code: AuthFailureCode, message: string): AuthFailure {
    // Without a token the challenge carries no error code (RFC 6750 §3.1).
    const challenge =
      code === 'ERR_TOKEN_MISSING'
        ? 'Bearer'
        : `Bearer error="invalid_token", error_description="${message.replace(/["\\]/g, '')}"`;
    return new AuthFailure(401, code, message, challenge);
  }

  static missingRoles(required: readonly string[]): AuthFailure {
    return AuthFailure.forbidden('ERR_APP_ROLE_MISSING', `requires app role ${required.join(', ')}`);
  }

  /** Authenticated, but this caller may not do this (RFC 6750 insufficient_scope). */
  static forbidden(
    code: 'ERR_APP_ROLE_MISSING' | 'ERR_CLIENT_NOT_ALLOWED' | 'ERR_CLIENT_CERTIFICATE_REQUIRED',
    message: string,
  ): AuthFailure {
    return new AuthFailure(403, code, message, 'Bearer error="insufficient_scope"');
  }

  static signingKeysUnavailable(): AuthFailure {
    return new AuthFailure(
      503,
      'ERR_SIGNING_KEYS_UNAVAILABLE',
      'signing keys are unavailable, try again later',
      undefined,
    );
  }

  /** OpenID discovery has not succeeded yet: nothing can be verified, so nothing is accepted (fail closed). */
  static issuerMetadataUnavailable(): AuthFailure {
    return AuthFailure.unauthorized(
      'ERR_ISSUER_METADATA_UNAVAILABLE',
      "the token issuer's metadata could not be read yet, try again later",
    );
  }

  /** What passport reported (an error from the strategy, or the `info` of a failed check). */
  static fromPassport(reason: unknown): AuthFailure {
    if (reason instanceof ClaimsError) return AuthFailure.unauthorized('ERR_TOKEN_CLAIMS', reason.message);
    if (reason instanceof AuthFailure) return reason;
    if (reason instanceof UnknownSigningKeyError)
      return AuthFailure.unauthorized('ERR_TOKEN_SIGNING_KEY_UNKNOWN', reason.message);
    if (reason instanceof SigningKeysUnavailableError) {
      return AuthFailure.signingKeysUnavailable();
    }
    const error = reason instanceof Error ? reason : new Error(String(reason ?? 'unknown'));
    const message = error.message;
    switch (error.name) {
      case 'TokenExpiredError':
        return AuthFailure.unauthorized('ERR_TOKEN_EXPIRED', 'token expired');
      case 'NotBeforeError':
        return AuthFailure.unauthorized('ERR_TOKEN_NOT_YET_VALID', 'token not yet valid');
      case 'JsonWebTokenError':
        return AuthFailure.fromJsonWebTokenError(message);
    }
    if (message === 'No auth token')
      return AuthFailure.unauthorized('ERR_TOKEN_MISSING', 'bearer token required');
    return AuthFailure.unauthorized('ERR_TOKEN_INVALID', 'invalid token');
  }

  private static fromJsonWebTokenError(message: string): AuthFailure {
    if (message.startsWith('jwt audience invalid'))
      return AuthFailure.unauthorized('ERR_TOKEN_AUDIENCE', 'audience not accepted');
    if (message.startsWith('jwt issuer invalid'))
      return AuthFailure.unauthorized('ERR_TOKEN_ISSUER', 'issuer not accepted');
    if (message === 'invalid signature')
      return AuthFailure.unauthorized('ERR_TOKEN_SIGNATURE', 'invalid signature');
    if (message === 'invalid algorithm' || message === 'jwt signature is required') {
      return AuthFailure.unauthorized('ERR_TOKEN_ALGORITHM', 'algorithm not accepted (RS256 only)');
    }
    // jwks-rsa declines to give a key for an alg it does not support (none, HS256…): jsonwebtoken then has no key.
    if (message === 'secret or public key must be provided') {
      return AuthFailure.unauthorized('ERR_TOKEN_ALGORITHM', 'algorithm not accepted (RS256 only)');
    }
    // A registered claim of the wrong type (exp or nbf not a number).
    if (/^invalid (exp|nbf|iat) value/.test(message))
      return AuthFailure.unauthorized('ERR_TOKEN_CLAIMS', message.replace(/ value$/, ' claim'));
    if (message.startsWith('jwt malformed') || message === 'invalid token')
      return AuthFailure.unauthorized('ERR_TOKEN_MALFORMED', 'malformed token');
    return AuthFailure.unauthorized('ERR_TOKEN_INVALID', 'invalid token');
  }

  toException(): HttpException {
    const body = {
      statusCode: this.status,
      error: ERROR_NAME[this.status],
      code: this.code,
      message: this.message,
    };
    if (this.status === 403) return new ForbiddenException(body);
    if (this.status === 503) return new ServiceUnavailableException(body);
    return new UnauthorizedException(body);
  }
}

const ERROR_NAME = { 401: 'Unauthorized', 403: 'Forbidden', 503: 'Service Unavailable' } as const;
