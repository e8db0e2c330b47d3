/**
 * Every error the API answers has one shape, `ApiError` in the OpenAPI document:
 * `{"statusCode":N,"error":"…","code":"ERR_…","message":"…"}` (plus `errors` for an invalid
 * order). Answers built by this API already carry their `code`; the ones Nest and Fastify build
 * (unknown route, a body that is not JSON, too large or of another media type, a path parameter
 * that cannot be decoded or is too long) get one here, and anything unexpected becomes a 500
 * that names nothing internal (the cause goes to the log).
 */
import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { requestContextOf } from '../observability/request-context';

export interface ApiErrorBody {
  statusCode: number;
  error: string;
  code: string;
  message: string;
  errors?: string[];
}

/** Codes for the errors that come without one (Nest's and Fastify's own). */
const STATUS_CODES: Record<number, string> = {
  400: 'ERR_BAD_REQUEST',
  404: 'ERR_NOT_FOUND',
  405: 'ERR_METHOD_NOT_ALLOWED',
  413: 'ERR_BODY_TOO_LARGE',
  414: 'ERR_URL_TOO_LONG',
  415: 'ERR_UNSUPPORTED_MEDIA_TYPE',
};

function reasonPhrase(status: number): string {
  const name = HttpStatus[status];
  if (name === undefined) return 'Error';
  return name
    .toLowerCase()
    .split('_')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(' ');
}

@Catch()
export class ApiErrorFilter implements ExceptionFilter {
  private readonly logger = new Logger(ApiErrorFilter.name);

  catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const body = this.toBody(exception, host.switchToHttp().getRequest<FastifyRequest>());
    if (reply.sent) return;
    void reply.status(body.statusCode).send(body);
  }

  private toBody(exception: unknown, request: FastifyRequest): ApiErrorBody {
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const response = exception.getResponse();
      if (isApiErrorBody(response)) return response;
      const message =
        typeof response === 'string' ? response : messageOf((response as { message?: unknown }).message);
      return withCode(status, message ?? exception.message);
    }
    const fastify = clientErrorOf(exception);
    if (fastify) return withCode(fastify.statusCode, fastify.message);
    this.logger.error({
      event: 'internal_error',
      message: exception instanceof Error ? exception.message : String(exception),
      ...(exception instanceof Error && exception.stack ? { stack: exception.stack } : {}),
      ...requestContextOf(request),
    });
    return withCode(500, 'internal error', 'ERR_INTERNAL');
  }
}

/**
 * Fastify's router answers a path parameter it cannot decode (400) or longer than its limit
 * (414) itself, outside Nest: given the API's shape here (`frameworkErrors` of the adapter).
 */
export function frameworkErrorHandler(error: Error, _request: FastifyRequest, reply: FastifyReply): void {
  const known = clientErrorOf(error);
  void reply
    .status(known?.statusCode ?? 500)
    .send(withCode(known?.statusCode ?? 500, known?.message ?? 'internal error'));
}

/** Fastify's own client errors (body parsing, routing) carry a 4xx `statusCode`. */
function clientErrorOf(exception: unknown): { statusCode: number; message: string } | undefined {
  const error = exception as { statusCode?: unknown; message?: unknown } | null;
  if (
    typeof error?.statusCode === 'number' &&
    error.statusCode >= 400 &&
    error.statusCode < 500 &&
    typeof error.message === 'string'
  )
    return { statusCode: error.statusCode, message: error.message };
  return undefined;
}

/** The API's error body for `status`, with the code that goes with it. */
export function withCode(status: number, message: string, code?: string): ApiErrorBody {
  return {
    statusCode: status,
    error: reasonPhrase(status),
    code: code ?? STATUS_CODES[status] ?? `ERR_HTTP_${status}`,
    message,
  };
}

function messageOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value.join('; ');
  return undefined;
}

function isApiErrorBody(value: unknown): value is ApiErrorBody {
  if (typeof value !== 'object' || value === null) return false;
  const body = value as Record<string, unknown>;
  return (
    typeof body['statusCode'] === 'number' &&
    typeof body['error'] === 'string' &&
    typeof body['code'] === 'string' &&
    typeof body['message'] === 'string'
  );
}
