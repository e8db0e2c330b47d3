/**
 * OpenAPI at `/docs` (Swagger UI) and `/docs-json`, with the Entra bearer scheme. Served by
 * Fastify outside Nest's router, so the global auth guards do not apply: the description is public.
 */
import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';

export const OPENAPI_BEARER_SCHEME = 'entra';

export function setUpOpenApi(app: INestApplication): void {
  const config = new DocumentBuilder()
    .setTitle('certflow orders API')
    .setDescription(
      'Called by partners with an Entra ID app-only access token (client credentials with a certificate). Errors carry a stable `code`.',
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
  SwaggerModule.setup('docs', app, () => SwaggerModule.createDocument(app, config), {
    jsonDocumentUrl: 'docs-json',
    raw: ['json'],
  });
}
