import { DynamicModule, Module, Type } from '@nestjs/common';
import { ApiConfig } from './config/api-config';
import { ApiConfigModule } from './config/api-config.module';
import { AuthModule } from './auth/auth.module';
import { HealthModule } from './health/health.module';
import { HostOriginModule } from './host-origin/host-origin.module';
import { OrdersModule } from './orders/orders.module';

@Module({})
export class AppModule {
  static forRoot(config: ApiConfig, extraModules: Type[] = []): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ApiConfigModule.forRoot(config),
        HostOriginModule,
        AuthModule.forRoot(),
        HealthModule,
        OrdersModule,
        ...extraModules,
      ],
    };
  }
}
