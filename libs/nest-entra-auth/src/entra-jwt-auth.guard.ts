/**
 * Global guard: every route needs a valid Entra access token unless marked `@Public()`.
 * A token that passed every check before and has not expired is taken from the
 * {@link VerifiedTokenCache} at once; any other goes through this application's strategy
 * (the `defaultStrategy` set by EntraAuthModule), which verifies it and fills the cache.
 */
import { ExecutionContext, Inject, Injectable, Logger } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard, AuthModuleOptions } from '@nestjs/passport';
import { VerifiedTokenCache } from '@certflow/claims';
import { AuthFailure, type AuthFailureCode } from './auth-failure';
import { PUBLIC_ROUTE } from './auth-decorators';
import { bearerToken } from './entra-jwt.strategy';
import type { ResolvedEntraAuthOptions } from './entra-auth-options';
import { ENTRA_AUTH_OPTIONS } from './entra-auth.tokens';
import type { VerifiedPrincipal } from './verified-principal';

@Injectable()
export class EntraJwtAuthGuard extends AuthGuard() {
  private readonly logger = new Logger(EntraJwtAuthGuard.name);

  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(AuthModuleOptions) passportOptions: AuthModuleOptions,
    @Inject(VerifiedTokenCache) private readonly verifiedTokens: VerifiedTokenCache<VerifiedPrincipal>,
    @Inject(ENTRA_AUTH_OPTIONS) private readonly entraOptions: ResolvedEntraAuthOptions,
  ) {
    super(passportOptions);
  }

  override canActivate(context: ExecutionContext) {
    const isPublic = this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (isPublic) return true;
    const request = context.switchToHttp().getRequest<{ headers: Record<string, unknown>; user?: unknown }>();
    // The same token string passed every check before (inspection, signature, issuer, audience, claims).
    const token = bearerToken(request as never);
    // From nbf until exp, with no clock tolerance: stricter than the first check, never looser
    // (a clock moved back puts a token before its nbf again; the strategy then decides).
    const nowSeconds = this.entraOptions.clock.nowMs() / 1000;
    const verified = token ? this.verifiedTokens.lookup(token, { nowSeconds }) : undefined;
    if (verified && (verified.notBeforeSeconds === undefined || nowSeconds >= verified.notBeforeSeconds)) {
      request.user = verified.value.principal;
      return true;
    }
    return super.canActivate(context);
  }

  override handleRequest<TUser>(
    err: unknown,
    user: unknown,
    info: unknown,
    context: ExecutionContext,
  ): TUser {
    if (!err && user) return user as TUser;
    const failure = AuthFailure.fromPassport(err ?? info);
    rejectRequest(this.logger, this.entraOptions, context, failure, err ?? info);
  }
}

/** Fastify's reply and Express's response both have `header(name, value)`. */
interface HeaderWriter {
  header(name: string, value: string): unknown;
}

const refusals = new WeakMap<object, AuthFailureCode>();

/** The code a request was refused with by these guards, if it was (for metrics and access logs). */
export function authFailureOf(request: object): AuthFailureCode | undefined {
  return refusals.get(request);
}

/** Logs the refusal (never the token) and throws the JSON error response. */
export function rejectRequest(
  logger: Logger,
  options: Pick<ResolvedEntraAuthOptions, 'logFields'>,
  context: ExecutionContext,
  failure: AuthFailure,
  cause?: unknown,
): never {
  const request = context.switchToHttp().getRequest<{ method: string; url: string }>();
  refusals.set(request, failure.code);
  logger.warn({
    event: 'auth_rejected',
    status: failure.status,
    code: failure.code,
    method: request.method,
    path: request.url.split('?')[0],
    ...(cause instanceof Error ? { cause: cause.message } : {}),
    ...options.logFields(request),
  });
  if (failure.wwwAuthenticate)
    context.switchToHttp().getResponse<HeaderWriter>().header('WWW-Authenticate', failure.wwwAuthenticate);
  throw failure.toException();
}
