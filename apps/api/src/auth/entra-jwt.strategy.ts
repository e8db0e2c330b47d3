/**
 * Step 8 of the flow, in the API: validate the Entra ID access token, then map its claims to
 * an {@link AppPrincipal}. Runs behind the gateway's validate-jwt too: the API trusts no one.
 *
 * In order, cheapest first:
 * 1. {@link inspectCompactJws}: size, compact form, header (RS256, typ JWT, kid, no key
 *    injection, no crit), JSON without duplicate members; the unverified `tid` must be a
 *    configured tenant (it picks whose JWKS to use) and `ver` an accepted version;
 * 2. (a token verified before and not expired never gets here: EntraJwtAuthGuard takes it
 *    from the {@link VerifiedTokenCache});
 * 3. passport-jwt (jsonwebtoken) verifies the RS256 signature with the tenant's key
 *    for `kid`, the issuer, audience, exp and nbf; then the claims are parsed by
 *    `@certflow/claims`, and the issuer must be the one of the token's own version and tenant.
 */
import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import passport from 'passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { AppPrincipal, parseAccessTokenClaims } from '@certflow/claims';
import type { ApiConfig } from '../config/api-config';
import { entraIssuer, entraIssuers } from '../config/api-config';
import { API_CONFIG } from '../config/api-config.token';
import { AuthFailure } from './auth-failure';
import { inspectCompactJws, type InspectedJws } from './compact-jws';
import { SigningKeys } from './signing-keys';
import { VerifiedTokenCache } from './verified-token-cache';

export const ENTRA_JWT = 'entra-jwt';

/** Injection token of this application's own strategy name (see AuthModule.forRoot). */
export const ENTRA_JWT_STRATEGY_NAME = Symbol('ENTRA_JWT_STRATEGY_NAME');

/** Seconds of clock difference tolerated on exp/nbf between Entra ID and this host. */
const CLOCK_TOLERANCE_SECONDS = 30;

export const bearerToken = ExtractJwt.fromAuthHeaderAsBearerToken();

interface PendingVerification extends InspectedJws {
  token: string;
  tenantId: string;
}

@Injectable()
export class EntraJwtStrategy extends PassportStrategy(Strategy, ENTRA_JWT) implements OnModuleDestroy {
  /** What step 1 found, for the key lookup and validate() of the same request. */
  private readonly pending = new WeakMap<object, PendingVerification>();

  constructor(
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    @Inject(ENTRA_JWT_STRATEGY_NAME) private readonly strategyName: string,
    @Inject(SigningKeys) private readonly signingKeys: SigningKeys,
    @Inject(VerifiedTokenCache) private readonly verifiedTokens: VerifiedTokenCache,
  ) {
    super({
      jwtFromRequest: bearerToken,
      secretOrKeyProvider: (request: object, _token: string, done: (err: unknown, key?: string) => void) => {
        const pending = this.pending.get(request);
        if (!pending) return done(AuthFailure.unauthorized('ERR_TOKEN_INVALID', 'invalid token'));
        this.signingKeys.keyFor(pending.tenantId, pending.header.kid).then(
          // jsonwebtoken takes a KeyObject as it is; passport-jwt's types only name strings and Buffers.
          (key) => done(null, key as unknown as string),
          (err: unknown) => done(err),
        );
      },
      passReqToCallback: true,
      algorithms: ['RS256'],
      issuer: entraIssuers(config),
      audience: config.audiences,
      ignoreExpiration: false,
      jsonWebTokenOptions: { clockTolerance: CLOCK_TOLERANCE_SECONDS },
    });
    // passport's registry is process-wide: the mixin registered us under the shared name, where a
    // second app in the same process (tests, an in-process stack) would replace us with its own
    // tenant and audiences. Each app authenticates through its own name instead.
    passport.unuse(ENTRA_JWT);
    passport.use(strategyName, this);
  }

  onModuleDestroy(): void {
    passport.unuse(this.strategyName);
  }

  override authenticate(request: object, options?: object): void {
    const token = bearerToken(request as Parameters<typeof bearerToken>[0]);
    if (!token) return super.authenticate(request as never, options); // reports the missing token
    let inspected: InspectedJws;
    let tenantId: string;
    try {
      inspected = inspectCompactJws(token);
      tenantId = this.acceptedTenantAndVersion(inspected.claims);
    } catch (err) {
      return this.fail(err, 401);
    }
    this.pending.set(request, { ...inspected, token, tenantId });
    super.authenticate(request as never, options);
  }

  /** Called by passport-jwt with the verified payload; what it returns becomes `request.user`. */
  validate(request: object, payload: unknown): AppPrincipal {
    const pending = this.pending.get(request);
    if (!pending) throw AuthFailure.unauthorized('ERR_TOKEN_INVALID', 'invalid token');
    const principal = parseAccessTokenClaims(payload);
    // The unverified tid chose the tenant's keys; the verified one must agree, and so must the issuer.
    if (principal.tenantId.toLowerCase() !== pending.tenantId)
      throw AuthFailure.unauthorized('ERR_TOKEN_TENANT', 'token issued for another tenant');
    if (
      (payload as { iss: string }).iss !== entraIssuer(this.config, pending.tenantId, principal.tokenVersion)
    ) {
      throw AuthFailure.unauthorized(
        'ERR_TOKEN_ISSUER',
        `issuer not accepted for a v${principal.tokenVersion} token of this tenant`,
      );
    }
    this.verifiedTokens.remember(pending.token, {
      principal,
      tenantId: pending.tenantId,
      kid: pending.header.kid,
      expiresAtSeconds: (payload as { exp: number }).exp,
    });
    return principal;
  }

  /** Unverified claims may only refuse a token early, never accept one. */
  private acceptedTenantAndVersion(claims: Record<string, unknown>): string {
    const tid = claims['tid'];
    const tenantId = typeof tid === 'string' ? tid.toLowerCase() : undefined;
    if (tenantId === undefined || !this.config.tenantIds.includes(tenantId)) {
      throw AuthFailure.unauthorized('ERR_TOKEN_TENANT', 'token issued for another tenant');
    }
    const ver = claims['ver'];
    if (!(this.config.acceptedTokenVersions as unknown[]).includes(ver)) {
      throw AuthFailure.unauthorized(
        'ERR_TOKEN_VERSION',
        `token version not accepted (accepted: ${this.config.acceptedTokenVersions.join(', ')})`,
      );
    }
    return tenantId;
  }
}
