import { DynamicModule, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { AppRolesGuard } from './app-roles.guard';
import { EntraJwtAuthGuard } from './entra-jwt-auth.guard';
import { ENTRA_JWT, ENTRA_JWT_STRATEGY_NAME, EntraJwtStrategy } from './entra-jwt.strategy';

let applications = 0;

/** Authentication (Entra access token) and authorization (app roles) for every route, in that order. */
@Module({})
export class AuthModule {
  /** One per application: its strategy gets a name of its own in passport's process-wide registry. */
  static forRoot(): DynamicModule {
    const strategyName = `${ENTRA_JWT}#${++applications}`;
    return {
      module: AuthModule,
      imports: [PassportModule.register({ session: false, defaultStrategy: strategyName })],
      providers: [
        { provide: ENTRA_JWT_STRATEGY_NAME, useValue: strategyName },
        EntraJwtStrategy,
        { provide: APP_GUARD, useClass: EntraJwtAuthGuard },
        { provide: APP_GUARD, useClass: AppRolesGuard },
      ],
    };
  }
}
