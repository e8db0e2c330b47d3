/**
 * Host and Origin checked on every request, before routing, auth or Swagger (@certflow/loopback-guard):
 * so that no web page can use the API through DNS rebinding or a cross-site request.
 *
 *   421 {"statusCode":421,"error":"Misdirected Request","code":"ERR_HOST_NOT_ALLOWED","message":…}
 *       a Host other than localhost, 127.0.0.1, [::1] (with the API's port) or an API_ALLOWED_HOSTS
 *       name, when the API listens on loopback (connection closed);
 *   403 {"statusCode":403,"error":"Forbidden","code":"ERR_ORIGIN_NOT_ALLOWED","message":…}
 *       an Origin other than the API's own, or Sec-Fetch-Site cross-site/same-site.
 *
 * Behind the gateway the API sees `Host: 127.0.0.1:PORT` (the gateway's http.Agent), which passes.
 */
import { Inject, Module, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { loopbackGuard, isLoopbackAddress } from '@certflow/loopback-guard';
import type { ApiConfig } from '../config/api-config';
import { API_CONFIG } from '../config/api-config.token';

@Module({})
export class HostOriginModule implements OnModuleInit {
  constructor(
    private readonly adapterHost: HttpAdapterHost,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  onModuleInit(): void {
    const options = {
      scheme: 'http' as const,
      boundToLoopback: isLoopbackAddress(this.config.host),
      allowedHosts: this.config.allowedHosts,
    };
    const checkHostAndOrigin = loopbackGuard(options);
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    fastify.addHook('onRequest', (request, reply, done) => {
      const guard = checkHostAndOrigin(request.raw);
      if (guard.ok) return done();
      const misdirected = guard.status === 421;
      if (misdirected) reply.header('connection', 'close');
      void reply.code(guard.status).send({
        statusCode: guard.status,
        error: misdirected ? 'Misdirected Request' : 'Forbidden',
        code: misdirected ? 'ERR_HOST_NOT_ALLOWED' : 'ERR_ORIGIN_NOT_ALLOWED',
        message: guard.reason,
      });
    });
  }
}
