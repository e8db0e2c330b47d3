import { DynamicModule, Module, Type } from '@nestjs/common';
import { EntraAuthModule } from '@certflow/nest-entra-auth';
import { ApiConfig, entraAuthOptions } from './config/api-config';
import { ApiConfigModule } from './config/api-config.module';
import { API_CONFIG } from './config/api-config.token';
import { HealthModule } from './health/health.module';
import { HostOriginModule } from './host-origin/host-origin.module';
import { ObservabilityModule } from './observability/observability.module';
import { requestContextOf } from './observability/request-context';
import { OrdersModule } from './orders/orders.module';

@Module({})
export class AppModule {
  static forRoot(config: ApiConfig, extraModules: Type[] = []): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ApiConfigModule.forRoot(config),
        EntraAuthModule.forRootAsync({
          inject: [API_CONFIG],
          useFactory: (apiConfig: ApiConfig) => ({
            ...entraAuthOptions(apiConfig),
            logFields: requestContextOf,
          }),
        }),
        ObservabilityModule,
        HostOriginModule,
        HealthModule,
        OrdersModule,
        ...extraModules,
      ],
    };
  }
}
