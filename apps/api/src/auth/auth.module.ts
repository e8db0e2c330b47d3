import { DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import type { ApiConfig } from '../config/api-config';
import { API_CONFIG } from '../config/api-config.token';
import { AppRolesGuard } from './app-roles.guard';
import { ClientPolicyGuard } from './client-policy.guard';
import { EntraJwtAuthGuard } from './entra-jwt-auth.guard';
import { ENTRA_JWT, ENTRA_JWT_STRATEGY_NAME, EntraJwtStrategy } from './entra-jwt.strategy';
import { SigningKeys } from './signing-keys';
import { VerifiedTokenCache } from './verified-token-cache';

let applications = 0;

/**
 * Authentication (Entra access token), then which clients may call (allow-list,
 * certificate-only), then app roles: global guards for every route, in that order.
 */
@Module({})
export class AuthModule {
  /** One per application: its strategy gets a name of its own in passport's process-wide registry. */
  static forRoot(): DynamicModule {
    const strategyName = `${ENTRA_JWT}#${++applications}`;
    return {
      module: AuthModule,
      global: true,
      imports: [PassportModule.register({ session: false, defaultStrategy: strategyName })],
      providers: [
        { provide: ENTRA_JWT_STRATEGY_NAME, useValue: strategyName },
        {
          provide: VerifiedTokenCache,
          useFactory: (config: ApiConfig) => new VerifiedTokenCache(config.tokenCacheSize),
          inject: [API_CONFIG],
        },
        SigningKeys,
        EntraJwtStrategy,
        { provide: APP_GUARD, useClass: EntraJwtAuthGuard },
        { provide: APP_GUARD, useClass: ClientPolicyGuard },
        { provide: APP_GUARD, useClass: AppRolesGuard },
      ],
      exports: [SigningKeys, VerifiedTokenCache],
    };
  }
}
