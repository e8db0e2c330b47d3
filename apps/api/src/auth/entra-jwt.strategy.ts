/**
 * Step 8 of the flow, in the API: validate the Entra ID access token (RS256 signature with a
 * key from the tenant's JWKS, issuer, audience, lifetime), then map its claims to an
 * {@link AppPrincipal}. Runs behind the gateway's validate-jwt too: the API trusts no one.
 */
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import passport from 'passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { passportJwtSecret } from 'jwks-rsa';
import { AppPrincipal, parseAccessTokenClaims } from '@certflow/claims';
import type { ApiConfig } from '../config/api-config';
import { entraIssuers, entraJwksUri, readCaFile } from '../config/api-config';
import { API_CONFIG } from '../config/api-config.token';
import { AuthFailure, SigningKeysUnavailableError, UnknownSigningKeyError } from './auth-failure';

export const ENTRA_JWT = 'entra-jwt';

/** Injection token of this application's own strategy name (see AuthModule.forRoot). */
export const ENTRA_JWT_STRATEGY_NAME = Symbol('ENTRA_JWT_STRATEGY_NAME');

/** Seconds of clock difference tolerated on exp/nbf between Entra ID and this host. */
const CLOCK_TOLERANCE_SECONDS = 30;

@Injectable()
export class EntraJwtStrategy extends PassportStrategy(Strategy, ENTRA_JWT) implements OnModuleDestroy {
  private readonly tenantId: string;

  constructor(
    @Inject(API_CONFIG) config: ApiConfig,
    @Inject(ENTRA_JWT_STRATEGY_NAME) private readonly strategyName: string,
  ) {
    const ca = readCaFile(config);
    super({
      jwtFromRequest: ExtractJwt.fromAuthHeaderAsBearerToken(),
      secretOrKeyProvider: passportJwtSecret({
        jwksUri: entraJwksUri(config),
        cache: true, // keys by kid; an unknown kid triggers a re-fetch (key rotation)
        rateLimit: true, // …but at most a few re-fetches a minute, so random kids cannot flood Entra
        timeout: 10_000,
        // The extra CA is added to the system roots, so real Entra ID stays trusted too.
        ...(ca ? { requestAgent: new Agent({ ca: [...rootCertificates, ca] }) } : {}),
        handleSigningKeyError: (err, cb) => {
          if (!err) return cb(null);
          const unknownKey = err.name === 'SigningKeyNotFoundError' || err.name === 'JwksRateLimitError';
          return cb(unknownKey ? new UnknownSigningKeyError(err.message) : new SigningKeysUnavailableError(err.message));
        },
      }),
      algorithms: ['RS256'],
      issuer: entraIssuers(config),
      audience: config.audiences,
      ignoreExpiration: false,
      jsonWebTokenOptions: { clockTolerance: CLOCK_TOLERANCE_SECONDS },
    });
    this.tenantId = config.tenantId;
    // passport's registry is process-wide: the mixin registered us under the shared name, where a
    // second app in the same process (tests, an in-process stack) would replace us with its own
    // tenant and audiences. Each app authenticates through its own name instead.
    passport.unuse(ENTRA_JWT);
    passport.use(strategyName, this);
  }

  onModuleDestroy(): void {
    passport.unuse(this.strategyName);
  }

  /** Called with the verified payload; what it returns becomes `request.user`. */
  validate(payload: unknown): AppPrincipal {
    const principal = parseAccessTokenClaims(payload);
    // The issuer already names the tenant; a tid that disagrees is a forged or confused token.
    if (principal.tenantId.toLowerCase() !== this.tenantId) {
      throw AuthFailure.unauthorized('ERR_TOKEN_TENANT', 'token issued for another tenant');
    }
    return principal;
  }
}
