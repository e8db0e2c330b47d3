/** Injection tokens of the module. */

/** The validated {@link ResolvedEntraAuthOptions}. */
export const ENTRA_AUTH_OPTIONS = Symbol('ENTRA_AUTH_OPTIONS');

/** This application's own passport strategy name (see EntraAuthModule). */
export const ENTRA_JWT_STRATEGY_NAME = Symbol('ENTRA_JWT_STRATEGY_NAME');
