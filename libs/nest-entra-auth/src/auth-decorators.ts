/**
 * Route metadata for the global guards: every route needs a valid Entra access token unless
 * it is `@Public()`; `@RequireAppRoles(...)` additionally needs every listed app role.
 */
import { createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import type { AppPrincipal } from '@certflow/claims';

export const PUBLIC_ROUTE = 'certflow:public-route';
export const REQUIRED_APP_ROLES = 'certflow:required-app-roles';

/** No token needed (health). */
export const Public = () => SetMetadata(PUBLIC_ROUTE, true);

/** The caller's token must carry all of these app roles (`roles` claim), else 403. */
export const RequireAppRoles = (...roles: [string, ...string[]]) => SetMetadata(REQUIRED_APP_ROLES, roles);

/** The authenticated caller, as mapped from the token by `@certflow/claims`. */
export const CurrentPrincipal = createParamDecorator(
  (_data: unknown, context: ExecutionContext): AppPrincipal => {
    return principalOf(context.switchToHttp().getRequest());
  },
);

/** Where passport leaves the principal on the request. */
export function principalOf(request: unknown): AppPrincipal {
  return (request as { user: AppPrincipal }).user;
}
