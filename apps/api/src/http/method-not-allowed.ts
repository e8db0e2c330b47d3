/**
 * A method the OpenAPI document does not declare on one of its paths answers 405 with `Allow`
 * (RFC 9110 §15.5.6) instead of the router's 404 "no such route". The paths and their methods
 * are read from the document itself, so the answer always agrees with what is published. It is
 * given before body parsing and before the guards: it tells nothing the public document does not.
 */
import type { OpenAPIObject } from '@nestjs/swagger';
import type { FastifyInstance } from 'fastify';
import { OPERATION_METHODS } from '../openapi/error-responses';
import { withCode } from './api-error.filter';

/** The methods a path of the document answers: the declared ones, and HEAD wherever GET is (Fastify adds it). */
function allowedMethods(item: OpenAPIObject['paths'][string]): string[] {
  const declared = OPERATION_METHODS.filter((method) => item[method] !== undefined).map((m) =>
    m.toUpperCase(),
  );
  if (declared.includes('GET') && !declared.includes('HEAD')) declared.push('HEAD');
  return declared;
}

export function answerUndeclaredMethods(fastify: FastifyInstance, paths: OpenAPIObject['paths']): void {
  for (const [template, item] of Object.entries(paths)) {
    const allowed = allowedMethods(item);
    const undeclared = fastify.supportedMethods.filter((method) => !allowed.includes(method));
    if (undeclared.length === 0) continue;
    const allow = allowed.join(', ');
    fastify.route({
      method: undeclared,
      // OpenAPI `{id}` is Fastify's `:id`.
      url: template.replace(/\{([^{}/]+)\}/g, ':$1'),
      onRequest: async (request, reply) => {
        const message = `${request.method} is not allowed on ${template}; allowed: ${allow}`;
        return reply.code(405).header('allow', allow).send(withCode(405, message));
      },
      handler: async () => undefined, // never reached: onRequest has answered
    });
  }
}
