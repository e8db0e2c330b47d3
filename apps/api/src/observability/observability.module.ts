/**
 * Per request, before anything else answers: the W3C trace context (`traceparent` from the
 * gateway continued, or a new trace), `x-request-id` on the response (the trace id), the
 * context every log line of the request carries; once answered: the request metrics, the auth
 * failure count and one access log line. `GET /metrics` serves the metrics.
 */
import { Controller, Get, Header, Inject, Logger, Module, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { ApiExcludeEndpoint } from '@nestjs/swagger';
import type { FastifyInstance } from 'fastify';
import { VerifiedTokenCache } from '@certflow/claims';
import { Public, authFailureOf } from '@certflow/nest-entra-auth';
import { continueTrace, PROMETHEUS_CONTENT_TYPE } from '@certflow/observability';
import { ApiMetrics, UNMATCHED_ROUTE } from './api-metrics';
import {
  REQUEST_CONTEXT,
  REQUEST_ID_HEADER,
  requestContextOf,
  setRequestContext,
  type RequestContext,
} from './request-context';

@Controller()
export class MetricsController {
  constructor(@Inject(ApiMetrics) private readonly metrics: ApiMetrics) {}

  /**
   * Prometheus text format, no token needed (like /health). In production, expose it only on an
   * internal network or path: the gateway should not route it to partners.
   */
  @Public()
  @ApiExcludeEndpoint()
  @Get('metrics')
  @Header('content-type', PROMETHEUS_CONTENT_TYPE)
  @Header('cache-control', 'no-store')
  metricsText(): Promise<string> {
    return this.metrics.text();
  }
}

const STARTED_AT = Symbol('certflow.requestStartedAt');

interface Timed {
  [STARTED_AT]?: number;
}

@Module({
  controllers: [MetricsController],
  providers: [
    {
      provide: ApiMetrics,
      useFactory: (cache: VerifiedTokenCache<unknown>) => new ApiMetrics(cache),
      inject: [VerifiedTokenCache],
    },
  ],
})
export class ObservabilityModule implements OnModuleInit {
  private readonly logger = new Logger('Access');

  constructor(
    @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
    @Inject(ApiMetrics) private readonly metrics: ApiMetrics,
  ) {}

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    fastify.decorateRequest(REQUEST_CONTEXT, null);
    fastify.decorateRequest(STARTED_AT, 0);
    fastify.addHook('onRequest', (request, reply, done) => {
      const trace = continueTrace(request.headers.traceparent);
      const context: RequestContext = {
        traceId: trace.traceId,
        spanId: trace.spanId,
        ...(trace.parentSpanId ? { parentSpanId: trace.parentSpanId } : {}),
        requestId: trace.traceId,
      };
      setRequestContext(request, context);
      (request as Timed)[STARTED_AT] = performance.now();
      reply.header(REQUEST_ID_HEADER, context.requestId);
      done();
    });
    fastify.addHook('onResponse', (request, reply, done) => {
      const startedAt = (request as Timed)[STARTED_AT];
      const route = request.routeOptions.url ?? UNMATCHED_ROUTE;
      const status = reply.statusCode;
      const seconds = startedAt ? (performance.now() - startedAt) / 1000 : 0;
      this.metrics.observeRequest(route, request.method, status, seconds);
      const refused = authFailureOf(request);
      if (refused) this.metrics.observeAuthFailure(refused);
      this.logger.log({
        event: 'request',
        method: request.method,
        route,
        status,
        durationMs: Math.round(seconds * 1e4) / 10,
        ...(refused ? { code: refused } : {}),
        ...requestContextOf(request),
      });
      done();
    });
  }
}
