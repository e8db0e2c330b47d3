/**
 * `EntraAuthModule.forRoot(options)` / `forRootAsync({ imports, inject, useFactory })`: Entra ID
 * access tokens on every route of the application. It registers three global guards, in this
 * order: authentication (a valid token, unless the route is `@Public()`), which clients may call
 * (allow-list, certificate-only), then app roles (`@RequireAppRoles(...)`). Issuers and signing
 * keys come from the tenants' OpenID metadata (see {@link EntraAuthority}).
 */
import { DynamicModule, Module, type ModuleMetadata, type Provider } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { VerifiedTokenCache } from '@certflow/claims';
import { AppRolesGuard } from './app-roles.guard';
import { ClientPolicyGuard } from './client-policy.guard';
import {
  validateEntraAuthOptions,
  type EntraAuthOptions,
  type ResolvedEntraAuthOptions,
} from './entra-auth-options';
import { ENTRA_AUTH_OPTIONS, ENTRA_JWT_STRATEGY_NAME } from './entra-auth.tokens';
import { EntraAuthority } from './entra-authority';
import { EntraJwtAuthGuard } from './entra-jwt-auth.guard';
import { ENTRA_JWT, EntraJwtStrategy } from './entra-jwt.strategy';
import type { VerifiedPrincipal } from './verified-principal';

export interface EntraAuthAsyncOptions {
  imports?: ModuleMetadata['imports'];
  /** Providers handed to `useFactory`, in order. */
  inject?: NonNullable<Extract<Provider, { useFactory: unknown }>['inject']>;
  useFactory: (...args: never[]) => EntraAuthOptions | Promise<EntraAuthOptions>;
}

let applications = 0;

@Module({})
export class EntraAuthModule {
  /** Options known up front; they are validated now (an {@link EntraAuthOptionsError} names the bad one). */
  static forRoot(options: EntraAuthOptions): DynamicModule {
    const valid = validateEntraAuthOptions(options);
    return EntraAuthModule.build([], { provide: ENTRA_AUTH_OPTIONS, useValue: valid });
  }

  /** Options built from other providers (a configuration service); validated when the app is created. */
  static forRootAsync(options: EntraAuthAsyncOptions): DynamicModule {
    const factory = options.useFactory as (
      ...args: unknown[]
    ) => EntraAuthOptions | Promise<EntraAuthOptions>;
    return EntraAuthModule.build(options.imports ?? [], {
      provide: ENTRA_AUTH_OPTIONS,
      useFactory: async (...args: unknown[]) => validateEntraAuthOptions(await factory(...args)),
      inject: options.inject ?? [],
    });
  }

  /** One per application: its strategy gets a name of its own in passport's process-wide registry. */
  private static build(imports: NonNullable<ModuleMetadata['imports']>, options: Provider): DynamicModule {
    const strategyName = `${ENTRA_JWT}#${++applications}`;
    return {
      module: EntraAuthModule,
      global: true,
      imports: [...imports, PassportModule.register({ session: false, defaultStrategy: strategyName })],
      providers: [
        options,
        { provide: ENTRA_JWT_STRATEGY_NAME, useValue: strategyName },
        {
          provide: VerifiedTokenCache,
          useFactory: (valid: ResolvedEntraAuthOptions) =>
            new VerifiedTokenCache<VerifiedPrincipal>(valid.tokenCacheSize),
          inject: [ENTRA_AUTH_OPTIONS],
        },
        EntraAuthority,
        EntraJwtStrategy,
        { provide: APP_GUARD, useClass: EntraJwtAuthGuard },
        { provide: APP_GUARD, useClass: ClientPolicyGuard },
        { provide: APP_GUARD, useClass: AppRolesGuard },
      ],
      exports: [ENTRA_AUTH_OPTIONS, EntraAuthority, VerifiedTokenCache],
    };
  }
}
