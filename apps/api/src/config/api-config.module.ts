import { DynamicModule, Global, Module } from '@nestjs/common';
import { ApiConfig } from './api-config';
import { API_CONFIG } from './api-config.token';

/** Makes the validated configuration injectable everywhere as {@link API_CONFIG}. */
@Global()
@Module({})
export class ApiConfigModule {
  static forRoot(config: ApiConfig): DynamicModule {
    return {
      module: ApiConfigModule,
      providers: [{ provide: API_CONFIG, useValue: config }],
      exports: [API_CONFIG],
    };
  }
}
