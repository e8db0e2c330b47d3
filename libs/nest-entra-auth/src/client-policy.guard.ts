/**
 * Global guard, after authentication and before app roles: which partners may call at all.
 * Options `allowedClientIds` (empty: any client of the tenants) and
 * `requireCertificateClients` (only `azpacr`/`appidacr` = "2": the article's
 * recommendation, certificates rather than client secrets, made enforceable). Both answer 403:
 * the token is valid, the caller is not allowed. Runs on every request, cached tokens included.
 */
import { CanActivate, ExecutionContext, Inject, Injectable, Logger } from '@nestjs/common';
import type { ResolvedEntraAuthOptions } from './entra-auth-options';
import { ENTRA_AUTH_OPTIONS } from './entra-auth.tokens';
import { AuthFailure } from './auth-failure';
import { principalOf } from './auth-decorators';
import { rejectRequest } from './entra-jwt-auth.guard';

@Injectable()
export class ClientPolicyGuard implements CanActivate {
  private readonly logger = new Logger(ClientPolicyGuard.name);
  private readonly allowedClientIds: ReadonlySet<string>;

  constructor(@Inject(ENTRA_AUTH_OPTIONS) private readonly config: ResolvedEntraAuthOptions) {
    this.allowedClientIds = new Set(config.allowedClientIds);
  }

  canActivate(context: ExecutionContext): boolean {
    const principal = principalOf(context.switchToHttp().getRequest());
    if (!principal) return true; // a @Public route
    if (this.allowedClientIds.size > 0 && !this.allowedClientIds.has(principal.clientAppId.toLowerCase())) {
      rejectRequest(
        this.logger,
        this.config,
        context,
        AuthFailure.forbidden('ERR_CLIENT_NOT_ALLOWED', 'client application not allowed to call this API'),
      );
    }
    if (this.config.requireCertificateClients && principal.clientAuthentication !== 'certificate') {
      rejectRequest(
        this.logger,
        this.config,
        context,
        AuthFailure.forbidden(
          'ERR_CLIENT_CERTIFICATE_REQUIRED',
          `this API accepts only certificate-authenticated clients; the token was obtained with a ${principal.clientAuthentication} client`,
        ),
      );
    }
    return true;
  }
}
