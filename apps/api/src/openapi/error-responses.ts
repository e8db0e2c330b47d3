/**
 * The error answers in the OpenAPI document. A partner can get two shapes: the API's own
 * (`ApiError`, always with a stable `code`) and APIM's (`GatewayError`,
 * `{"statusCode":N,"message":"…"}`), given by the gateway in front of the API before or instead
 * of forwarding. Answers that do not depend on the operation (the global guards, Fastify's body
 * parsing, the gateway) are added to every operation they apply to here, not on each route.
 */
import type { OpenAPIObject } from '@nestjs/swagger';
import { AppRole } from '../app-roles';

// The OpenAPI object types, as far as @nestjs/swagger exports them.
type OperationObject = NonNullable<OpenAPIObject['paths'][string]['get']>;
type ResponseObject = Exclude<OperationObject['responses'][string], { $ref: string } | undefined>;
type SchemaOrRef = NonNullable<NonNullable<OpenAPIObject['components']>['schemas']>[string];
type SchemaObject = Exclude<SchemaOrRef, { $ref: string }>;

export const API_ERROR_REF = '#/components/schemas/ApiError';
const GATEWAY_ERROR_REF = '#/components/schemas/GatewayError';

const ERROR_SCHEMAS: Record<string, SchemaObject> = {
  ApiError: {
    type: 'object',
    description: "The API's error answer.",
    required: ['statusCode', 'error', 'code', 'message'],
    additionalProperties: false,
    properties: {
      statusCode: { type: 'integer', minimum: 400, maximum: 599, description: 'the HTTP status again' },
      error: { type: 'string', description: 'the HTTP reason phrase', example: 'Forbidden' },
      code: { type: 'string', pattern: '^ERR_[A-Z0-9_]+$', example: 'ERR_APP_ROLE_MISSING' },
      message: { type: 'string', example: `requires app role ${AppRole.OrdersWrite}` },
      errors: {
        type: 'array',
        items: { type: 'string' },
        description: 'ERR_ORDER_INVALID only: one message per problem of the body',
      },
    },
  },
  GatewayError: {
    type: 'object',
    description:
      "API Management's error answer, given by the gateway in front of the API (the request did not reach the API, or the API could not be reached).",
    required: ['statusCode', 'message'],
    additionalProperties: false,
    properties: {
      statusCode: { type: 'integer', minimum: 400, maximum: 599 },
      message: { type: 'string', example: 'Unauthorized. Access token is missing or invalid.' },
    },
  },
};

/** Answers of the Host and Origin check (host-origin.module.ts): before routing, so on every operation. */
const HOST_ORIGIN_ANSWERS: Record<number, string> = {
  403: 'API: ERR_ORIGIN_NOT_ALLOWED, an `Origin` other than its own, or `Sec-Fetch-Site` cross-site or same-site',
  421: 'API: ERR_HOST_NOT_ALLOWED, `Host` is not a name of the API',
};

/** Answers of the API's global guards, on every operation with a security requirement. */
const GUARD_ANSWERS: Record<number, string> = {
  401: 'API: no valid Entra access token (ERR_TOKEN_MISSING, ERR_TOKEN_EXPIRED, ERR_TOKEN_AUDIENCE, … and a `WWW-Authenticate: Bearer` challenge)',
  403: 'API: valid token, caller not allowed (ERR_APP_ROLE_MISSING, ERR_CLIENT_NOT_ALLOWED, ERR_CLIENT_CERTIFICATE_REQUIRED)',
  503: "API: ERR_SIGNING_KEYS_UNAVAILABLE, the token's signing key cannot be fetched now (try again later)",
};

/** Answers of Fastify's body parsing, on every operation with a request body. */
function bodyAnswers(bodyLimitBytes: number): Record<number, string> {
  return {
    400: 'API: ERR_BAD_REQUEST, the body is not valid JSON (or empty under a JSON content type)',
    413: `API: ERR_BODY_TOO_LARGE, the body is larger than ${bodyLimitBytes} bytes`,
    415: 'API: ERR_UNSUPPORTED_MEDIA_TYPE, the body is neither application/json nor text/plain',
  };
}

/** Answers of Fastify's router, on every operation with a path parameter. */
function pathParameterAnswers(maxParamLength: number): Record<number, string> {
  return {
    400: 'API: ERR_BAD_REQUEST, a path parameter is not valid percent-encoded UTF-8',
    414: `API: ERR_URL_TOO_LONG, a path parameter is longer than ${maxParamLength} characters`,
  };
}

/** What the gateway (Application Gateway + API Management, tools/local-gateway here) answers itself. */
const GATEWAY_ANSWERS: Record<number, string> = {
  400: 'gateway: malformed request, ambiguous framing (e.g. both Content-Length and Transfer-Encoding), or a path with an encoded `/`, `\\`, NUL or an invalid escape',
  401: 'gateway (validate-jwt): no valid access token for this API',
  403: 'gateway: a cross-site `Origin`, or refused by an access policy',
  408: 'gateway: headers or body not received in time',
  413: 'gateway: body larger than its limit (2 MiB)',
  414: 'gateway: request target longer than 8 KiB',
  421: 'gateway: `Host` is not a name of this gateway',
  429: 'gateway (rate-limit policies): too many requests, `Retry-After` says when to try again',
  431: 'gateway: request line and headers larger than 16 KiB',
  502: 'gateway: the API could not be reached',
  504: 'gateway: the API did not answer in time',
  505: 'gateway: HTTP version not supported',
};

/** The operations a path item of an OpenAPI document can hold. */
export const OPERATION_METHODS = [
  'get',
  'put',
  'post',
  'delete',
  'options',
  'head',
  'patch',
  'trace',
] as const;

/** Adds the error schemas and, to every operation, the error answers that apply to it. */
export function documentErrorAnswers(
  document: OpenAPIObject,
  options: { bodyLimitBytes: number; maxParamLength: number },
): void {
  document.components ??= {};
  document.components.schemas = { ...document.components.schemas, ...ERROR_SCHEMAS };
  for (const item of Object.values(document.paths)) {
    for (const method of OPERATION_METHODS) {
      const operation = item[method];
      if (!operation) continue;
      addAnswers(operation, HOST_ORIGIN_ANSWERS, API_ERROR_REF);
      if (operation.security?.length) addAnswers(operation, GUARD_ANSWERS, API_ERROR_REF);
      if (operation.parameters?.some((p) => 'in' in p && p.in === 'path'))
        addAnswers(operation, pathParameterAnswers(options.maxParamLength), API_ERROR_REF);
      if (operation.requestBody) addAnswers(operation, bodyAnswers(options.bodyLimitBytes), API_ERROR_REF);
      addAnswers(operation, GATEWAY_ANSWERS, GATEWAY_ERROR_REF);
    }
  }
}

function addAnswers(operation: OperationObject, answers: Record<number, string>, schemaRef: string): void {
  for (const [status, description] of Object.entries(answers)) {
    const existing = operation.responses[status] as ResponseObject | undefined;
    if (!existing) {
      operation.responses[status] = { description, content: jsonOf({ $ref: schemaRef }) };
      continue;
    }
    if (!existing.description.includes(description)) existing.description += `; ${description}`;
    const current = existing.content?.['application/json']?.schema;
    existing.content = jsonOf(current ? eitherOf(current, schemaRef) : { $ref: schemaRef });
  }
}

/** `oneOf` the schemas a status can carry: ApiError and GatewayError never both match (`code`). */
function eitherOf(current: SchemaOrRef, schemaRef: string): SchemaOrRef {
  const options = 'oneOf' in current && current.oneOf ? current.oneOf : [current];
  if (options.some((option) => '$ref' in option && option.$ref === schemaRef)) return current;
  return { oneOf: [...options, { $ref: schemaRef }] };
}

function jsonOf(schema: SchemaOrRef): ResponseObject['content'] {
  return { 'application/json': { schema } };
}
