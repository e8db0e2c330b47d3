import type { AppPrincipal } from '@certflow/claims';

/**
 * What the verified-token cache (`VerifiedTokenCache<VerifiedPrincipal>` from `@certflow/claims`)
 * keeps per token: the caller, and the tenant key that verified it (so that the entry goes
 * when the key leaves the tenant's JWKS).
 */
export interface VerifiedPrincipal {
  principal: AppPrincipal;
  tenantId: string;
  kid: string;
}
