/** Global guard, after authentication: a route's `@RequireAppRoles(...)` against the principal's `roles`. */
import { CanActivate, ExecutionContext, Inject, Injectable, Logger } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthFailure } from './auth-failure';
import { principalOf, REQUIRED_APP_ROLES } from './auth-decorators';
import type { ResolvedEntraAuthOptions } from './entra-auth-options';
import { ENTRA_AUTH_OPTIONS } from './entra-auth.tokens';
import { rejectRequest } from './entra-jwt-auth.guard';

@Injectable()
export class AppRolesGuard implements CanActivate {
  private readonly logger = new Logger(AppRolesGuard.name);

  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(ENTRA_AUTH_OPTIONS) private readonly options: ResolvedEntraAuthOptions,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const required = this.reflector.getAllAndOverride<string[] | undefined>(REQUIRED_APP_ROLES, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!required || required.length === 0) return true;
    const principal = principalOf(context.switchToHttp().getRequest());
    // A route that needs roles but was reached without a principal is marked @Public by mistake: refuse.
    if (!principal)
      rejectRequest(
        this.logger,
        this.options,
        context,
        AuthFailure.unauthorized('ERR_TOKEN_MISSING', 'bearer token required'),
      );
    const missing = required.filter((role) => !principal.roles.includes(role));
    if (missing.length > 0)
      rejectRequest(this.logger, this.options, context, AuthFailure.missingRoles(required));
    return true;
  }
}
