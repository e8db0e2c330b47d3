/**
 * Creating and starting the API in code (tests, tools/stack) and from `main.ts`.
 *
 * @example
 *   const api = await startApi(loadApiConfig({ ENTRA_TENANT_ID: tid, API_AUDIENCES: appId, PORT: '0' }));
 *   await fetch(`${api.url}/health`);
 *   await api.close();
 */
import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import type { LoggerService, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppModule } from './app.module';
import { ApiConfigInput, validateApiConfig } from './config/api-config';
import { ApiErrorFilter, frameworkErrorHandler } from './http/api-error.filter';
import { answerUndeclaredMethods } from './http/method-not-allowed';
import { JsonLogger } from './logging/json-logger';
import { setUpOpenApi } from './openapi/openapi';

/** Request bodies are small JSON documents (orders). */
const BODY_LIMIT_BYTES = 16 * 1024;
/** Fastify's default, stated so that the OpenAPI document can say it (414 beyond). */
const MAX_PARAM_LENGTH = 100;

export interface ApiAppOptions {
  /** Defaults to JSON lines on stderr; `false` silences Nest's logs. */
  logger?: LoggerService | false;
  /** Extra feature modules mounted behind the same guards (the benchmark's twin routes). */
  modules?: Type[];
}

export interface RunningApi {
  /** `http://HOST:PORT`, with the port actually bound. */
  readonly url: string;
  readonly app: NestFastifyApplication;
  close(): Promise<void>;
}

/** Builds the Nest application (not yet listening); the configuration is validated first. */
export async function createApiApp(
  config: ApiConfigInput,
  options: ApiAppOptions = {},
): Promise<NestFastifyApplication> {
  const valid = validateApiConfig(config);
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(valid, options.modules ?? []),
    new FastifyAdapter({
      bodyLimit: BODY_LIMIT_BYTES,
      routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
      frameworkErrors: frameworkErrorHandler,
    }),
    {
      logger: options.logger ?? new JsonLogger(),
      abortOnError: false, // a failure during start-up must reach the caller, not exit the process
    },
  );
  app.useGlobalFilters(new ApiErrorFilter());
  const document = setUpOpenApi(app, {
    bodyLimitBytes: BODY_LIMIT_BYTES,
    maxParamLength: MAX_PARAM_LENGTH,
  });
  answerUndeclaredMethods(app.getHttpAdapter().getInstance(), document.paths);
  return app;
}

/** Creates the application and listens on `config.host:config.port` (port 0: any free port). */
export async function startApi(config: ApiConfigInput, options: ApiAppOptions = {}): Promise<RunningApi> {
  const app = await createApiApp(config, options);
  try {
    await app.listen(config.port, config.host);
  } catch (err) {
    await app.close();
    throw err;
  }
  const address = app.getHttpServer().address() as AddressInfo;
  return { url: listeningUrl(address), app, close: () => app.close() };
}

function listeningUrl(address: AddressInfo): string {
  // A wildcard address is reached locally through the loopback address.
  const host = address.address === '0.0.0.0' || address.address === '::' ? '127.0.0.1' : address.address;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}`;
}
