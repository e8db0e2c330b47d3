/**
 * Validate the Entra ID access token, then map its claims to an {@link AppPrincipal}. Meant to
 * run behind a gateway's validate-jwt too: the application trusts no one (defence in depth).
 *
 * In order, cheapest first:
 * 1. {@link inspectCompactJws}: size, compact form, header (RS256, typ JWT, kid, no key
 *    injection, no crit), JSON without duplicate members; the unverified `tid` must be a
 *    configured tenant (it picks whose JWKS to use) and `ver` an accepted version;
 * 2. (a token verified before and not expired never gets here: EntraJwtAuthGuard takes it
 *    from the {@link VerifiedTokenCache});
 * 3. passport-jwt (jsonwebtoken) verifies the RS256 signature with the tenant's key for
 *    `kid`, the audience, exp and nbf (by the `clock` option's time); then the issuer must be
 *    one read from the tenants' metadata, the claims are parsed by `@certflow/claims`, and the
 *    issuer must be the one of the token's own version and tenant.
 */
import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import passport from 'passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import { AppPrincipal, parseAccessTokenClaims, VerifiedTokenCache } from '@certflow/claims';
import { AuthFailure } from './auth-failure';
import { inspectCompactJws, type InspectedJws } from './compact-jws';
import type { ResolvedEntraAuthOptions } from './entra-auth-options';
import { ENTRA_AUTH_OPTIONS, ENTRA_JWT_STRATEGY_NAME } from './entra-auth.tokens';
import { EntraAuthority } from './entra-authority';
import type { VerifiedPrincipal } from './verified-principal';

export const ENTRA_JWT = 'entra-jwt';

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
    @Inject(ENTRA_AUTH_OPTIONS) private readonly options: ResolvedEntraAuthOptions,
    @Inject(ENTRA_JWT_STRATEGY_NAME) private readonly strategyName: string,
    @Inject(EntraAuthority) private readonly authority: EntraAuthority,
    @Inject(VerifiedTokenCache) private readonly verifiedTokens: VerifiedTokenCache<VerifiedPrincipal>,
  ) {
    super({
      jwtFromRequest: bearerToken,
      secretOrKeyProvider: (request: object, _token: string, done: (err: unknown, key?: string) => void) => {
        const pending = this.pending.get(request);
        if (!pending) return done(AuthFailure.unauthorized('ERR_TOKEN_INVALID', 'invalid token'));
        this.authority.keyFor(pending.tenantId, pending.header.kid).then(
          // jsonwebtoken takes a KeyObject as it is; passport-jwt's types only name strings and Buffers.
          (key) => done(null, key as unknown as string),
          (err: unknown) => done(err),
        );
      },
      passReqToCallback: true,
      algorithms: ['RS256'],
      // The issuers come from discovery, after start-up: checked in validate().
      audience: options.audiences,
      ignoreExpiration: false,
      jsonWebTokenOptions: { clockTolerance: CLOCK_TOLERANCE_SECONDS },
    });
    // jsonwebtoken judges exp and nbf by `clockTimestamp` (else the real time). passport-jwt copies
    // its options once, here: a getter on that copy gives each verification the clock's time.
    const verifyOptions = (this as unknown as { _verifOpts?: object })._verifOpts;
    if (typeof verifyOptions !== 'object')
      throw new Error('passport-jwt: no verification options to set the clock on');
    Object.defineProperty(verifyOptions, 'clockTimestamp', {
      enumerable: true,
      get: () => Math.floor(options.clock.nowMs() / 1000),
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
      // Fail closed: without the tenant's metadata there is no issuer or key to check against.
      if (!this.authority.isDiscovered(tenantId)) throw AuthFailure.issuerMetadataUnavailable();
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
    const issuer = (payload as { iss?: unknown }).iss;
    if (!this.authority.isAcceptedIssuer(issuer))
      throw AuthFailure.unauthorized('ERR_TOKEN_ISSUER', 'issuer not accepted');
    const principal = parseAccessTokenClaims(payload);
    // The unverified tid chose the tenant's keys; the verified one must agree, and so must the issuer.
    if (principal.tenantId.toLowerCase() !== pending.tenantId)
      throw AuthFailure.unauthorized('ERR_TOKEN_TENANT', 'token issued for another tenant');
    if (issuer !== this.authority.issuerOf(pending.tenantId, principal.tokenVersion)) {
      throw AuthFailure.unauthorized(
        'ERR_TOKEN_ISSUER',
        `issuer not accepted for a v${principal.tokenVersion} token of this tenant`,
      );
    }
    const frozen = Object.freeze({ ...principal, roles: Object.freeze([...principal.roles]) });
    this.verifiedTokens.store(
      pending.token,
      { principal: frozen, tenantId: pending.tenantId, kid: pending.header.kid },
      {
        expiresAtSeconds: (payload as { exp?: unknown }).exp,
        notBeforeSeconds: (payload as { nbf?: unknown }).nbf,
      },
    );
    return frozen; // the same shape a cache hit hands out
  }

  /** Unverified claims may only refuse a token early, never accept one. */
  private acceptedTenantAndVersion(claims: Record<string, unknown>): string {
    const tid = claims['tid'];
    const tenantId = typeof tid === 'string' ? tid.toLowerCase() : undefined;
    if (tenantId === undefined || !this.options.tenantIds.includes(tenantId)) {
      throw AuthFailure.unauthorized('ERR_TOKEN_TENANT', 'token issued for another tenant');
    }
    const ver = claims['ver'];
    if (!(this.options.acceptedTokenVersions as unknown[]).includes(ver)) {
      throw AuthFailure.unauthorized(
        'ERR_TOKEN_VERSION',
        `token version not accepted (accepted: ${this.options.acceptedTokenVersions.join(', ')})`,
      );
    }
    return tenantId;
  }
}
