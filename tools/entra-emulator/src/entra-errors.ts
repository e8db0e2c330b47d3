/**
 * Token-service errors shaped exactly like Entra ID's, so that client code (and MSAL) sees
 * the same `error`, `AADSTSnnnn:` prefix and `error_codes` it would see in production.
 */
export type OAuthErrorName =
  | 'invalid_request'
  | 'invalid_client'
  | 'unauthorized_client'
  | 'invalid_scope'
  | 'invalid_resource'
  | 'invalid_tenant'
  | 'unsupported_grant_type'
  | 'temporarily_unavailable'
  | 'server_error';

export class EntraError extends Error {
  override readonly name = 'EntraError';
  constructor(
    readonly status: number,
    readonly error: OAuthErrorName,
    readonly aadsts: number,
    readonly description: string,
  ) {
    super(`AADSTS${aadsts}: ${description}`);
  }
}

export interface EntraErrorBody {
  error: OAuthErrorName;
  error_description: string;
  error_codes: number[];
  timestamp: string;
  trace_id: string;
  correlation_id: string;
  error_uri: string;
}

/** Entra's timestamp format: `2024-05-01 12:34:56Z`. */
export function entraTimestamp(at: Date): string {
  return `${at.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

export function entraErrorBody(
  err: EntraError,
  ids: { traceId: string; correlationId: string },
  at: Date,
): EntraErrorBody {
  const timestamp = entraTimestamp(at);
  return {
    error: err.error,
    error_description: `AADSTS${err.aadsts}: ${err.description}\r\nTrace ID: ${ids.traceId}\r\nCorrelation ID: ${ids.correlationId}\r\nTimestamp: ${timestamp}`,
    error_codes: [err.aadsts],
    timestamp,
    trace_id: ids.traceId,
    correlation_id: ids.correlationId,
    // The public documentation link, as Entra sends it; nothing local is served there.
    error_uri: `https://login.microsoftonline.com/error?code=${err.aadsts}`,
  };
}

/** Longest text from a request that an error repeats; a longer value is cut and ends in "…". */
export const ECHO_MAX_CHARS = 64;

/** A value from the request as an error repeats it: at most ECHO_MAX_CHARS characters, then "…". */
export function shown(value: unknown): string {
  const text = String(value);
  return text.length > ECHO_MAX_CHARS ? `${text.slice(0, ECHO_MAX_CHARS)}…` : text;
}

const CERT_DOC =
  'Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .';

/** One constructor per situation, with Entra's wording, so the codes live in one place. */
export const entraErrors = {
  missingParameter: (name: string) =>
    new EntraError(
      400,
      'invalid_request',
      900144,
      `The request body must contain the following parameter: '${name}'.`,
    ),
  malformedRequest: (detail: string) =>
    new EntraError(
      400,
      'invalid_request',
      9002313,
      `Invalid request. Request is malformed or invalid. ${detail}`,
    ),
  bodyTooLarge: (limit: number) =>
    new EntraError(
      413,
      'invalid_request',
      9002313,
      `Invalid request. Request is malformed or invalid. The request body exceeds ${limit} bytes.`,
    ),
  postOnly: (method: string) =>
    new EntraError(
      400,
      'invalid_request',
      900561,
      `The endpoint only accepts POST, OPTIONS requests. Received a ${shown(method)} request.`,
    ),
  unsupportedGrantType: (grantType: string) =>
    new EntraError(
      400,
      'unsupported_grant_type',
      70003,
      `The app requested an unsupported grant type '${shown(grantType)}'.`,
    ),
  tenantNotFound: (tenant: string) =>
    new EntraError(
      400,
      'invalid_tenant',
      90002,
      `Tenant '${shown(tenant)}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.`,
    ),
  commonEndpoint: () =>
    new EntraError(
      400,
      'invalid_request',
      9001023,
      "The grant type isn't supported over the /common or /consumers endpoints.",
    ),
  applicationNotFound: (clientId: string, tenantName: string) =>
    new EntraError(
      400,
      'unauthorized_client',
      700016,
      `Application with identifier '${shown(clientId)}' was not found in the directory '${tenantName}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.`,
    ),
  noCredential: () =>
    new EntraError(
      401,
      'invalid_client',
      7000218,
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ),
  invalidSecret: (appId: string) =>
    new EntraError(
      401,
      'invalid_client',
      7000215,
      `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${appId}'.`,
    ),
  expiredSecret: (appId: string) =>
    new EntraError(
      401,
      'invalid_client',
      7000222,
      `The provided client secret keys for app '${appId}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.`,
    ),
  malformedAssertion: (detail: string) =>
    new EntraError(401, 'invalid_client', 50027, `JWT token is invalid or malformed. ${detail}`),
  keyNotFound: (thumbprintHex: string, appId: string) =>
    new EntraError(
      401,
      'invalid_client',
      700027,
      `Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '${thumbprintHex}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '${appId}'.]`,
    ),
  keyExpired: (thumbprintHex: string, window: string) =>
    new EntraError(
      401,
      'invalid_client',
      700027,
      `Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '${thumbprintHex}', Found key '${window}']`,
    ),
  signatureInvalid: (thumbprintHex: string, window: string) =>
    new EntraError(
      401,
      'invalid_client',
      50013,
      `Assertion failed signature validation. [Reason - Key was found, but use of the key to verify the signature failed., Thumbprint of key used by client: '${thumbprintHex}', Found key '${window}']`,
    ),
  subjectMismatch: (appId: string) =>
    new EntraError(
      401,
      'invalid_client',
      50048,
      `Subject mismatches Issuer claim in the client assertion for application '${appId}'.`,
    ),
  wrongAudience: () =>
    new EntraError(
      401,
      'invalid_client',
      700023,
      `Client assertion audience claim does not match Realm issuer. ${CERT_DOC}`,
    ),
  assertionTimeRange: (now: Date, from: Date, expiry: Date | undefined) =>
    new EntraError(
      401,
      'invalid_client',
      700024,
      `Client assertion is not within its valid time range. Current time: ${now.toISOString()}, assertion valid from ${from.toISOString()}, expiry time of assertion ${expiry ? expiry.toISOString() : '(none)'}. ${CERT_DOC}`,
    ),
  scopeNotDefault: (scope: string) =>
    new EntraError(
      400,
      'invalid_scope',
      1002012,
      `The provided value for scope ${shown(scope)} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).`,
    ),
  invalidScope: (scope: string) =>
    new EntraError(
      400,
      'invalid_scope',
      70011,
      `The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. Scope ${shown(scope)} is not valid.`,
    ),
  resourceNotFound: (resource: string, tenantName: string) =>
    new EntraError(
      400,
      'invalid_resource',
      500011,
      `The resource principal named ${shown(resource)} was not found in the tenant named ${tenantName}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.`,
    ),
  serverError: () =>
    new EntraError(500, 'server_error', 90100, 'An unexpected error occurred while processing the request.'),
  /** Injected faults (see faults.ts). */
  throttled: () =>
    new EntraError(
      429,
      'temporarily_unavailable',
      90055,
      'TenantThrottlingError: There are too many incoming requests. Retry after the interval in the Retry-After header.',
    ),
  unavailable: (status: 502 | 503 | 504) =>
    new EntraError(
      status,
      'temporarily_unavailable',
      90033,
      'A transient error has occurred. The service is temporarily unavailable; please try again.',
    ),
} as const;
