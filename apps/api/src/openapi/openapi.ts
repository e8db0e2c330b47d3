/**
 * OpenAPI at `/docs` (Swagger UI) and `/docs-json`, with the Entra bearer scheme. Served by
 * Fastify outside Nest's router, so the global auth guards do not apply: the description is public.
 * It documents every answer an operation can give, the gateway's included (error-responses.ts).
 */
import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { documentErrorAnswers } from './error-responses';

export const OPENAPI_BEARER_SCHEME = 'entra';

export interface OpenApiOptions {
  /** The API's request body limit, stated in the 413 answers. */
  bodyLimitBytes: number;
  /** Fastify's path parameter limit, stated in the 414 answers. */
  maxParamLength: number;
}

/** Builds the document once, serves it, and returns it (its paths drive the 405 answers). */
export function setUpOpenApi(app: INestApplication, options: OpenApiOptions): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('certflow orders API')
    .setDescription(
      "Called by partners with an Entra ID app-only access token (client credentials with a certificate), through a gateway (Application Gateway + API Management) that validates the token first. Errors of the API carry a stable `code` (`ApiError`); errors the gateway answers itself have API Management's shape (`GatewayError`). A method a path does not declare answers 405 with `Allow`.",
    )
    .setVersion('1')
    .addBearerAuth(
      {
        type: 'http',
        scheme: 'bearer',
        bearerFormat: 'JWT',
        description: 'Entra ID access token for this API (scope `<App ID URI>/.default`)',
      },
      OPENAPI_BEARER_SCHEME,
    )
    .build();
  const document = SwaggerModule.createDocument(app, config);
  closeObjectSchemas(document);
  documentErrorAnswers(document, options);
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json', raw: ['json'] });
  return document;
}

/**
 * The API refuses unknown fields in what it reads (CreateOrderPipe) and sends none it does not
 * document, so every object schema says so: a drift either way fails the schema conformance test.
 */
function closeObjectSchemas(document: OpenAPIObject): void {
  for (const schema of Object.values(document.components?.schemas ?? {})) {
    if ('type' in schema && schema.type === 'object' && schema.additionalProperties === undefined)
      schema.additionalProperties = false;
  }
}
