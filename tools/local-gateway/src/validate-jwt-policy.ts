/**
 * `<validate-jwt>`: compiled from the policy XML at load time (every attribute and child
 * element checked, unsupported ones refused), then run per request.
 *
 * Supported: header-name (with the Authorization scheme check, see below), query-parameter-name,
 * failed-validation-httpcode (401), failed-validation-error-message, require-expiration-time
 * (true), require-scheme, require-signed-tokens (only true), clock-skew (0 s),
 * output-token-variable-name, id; children openid-config (one or more), audiences, issuers,
 * required-claims. Refused for now: token-value, issuer-signing-keys, decryption-keys.
 *
 * Token source: APIM requires exactly one of header-name, query-parameter-name, token-value
 * (there is no default header). When the header is `Authorization` the value must be
 * `<scheme> <token>` with the scheme `require-scheme` names, `Bearer` when it is not set.
 * APIM ignores `require-scheme` on any other header; this gateway refuses that combination
 * instead of ignoring an attribute.
 */
import { ApimError } from './apim-errors';
import { JwtRules, JwtValidationFailure, RequiredClaim, SigningKeySource, validateJwt } from './jwt-validation';
import { OpenIdMetadata, OpenIdMetadataCache } from './openid-metadata-cache';
import type { PolicyContext, PolicyStatement } from './policy-context';
import { ElementReader, PolicyElement } from './policy-xml';

export type TokenSource = { kind: 'header'; name: string; scheme: string | undefined } | { kind: 'query'; name: string };

export interface ValidateJwtConfig {
  tokenSource: TokenSource;
  failedStatusCode: number;
  failedMessage: string | undefined;
  outputTokenVariableName: string | undefined;
  openIdConfigs: OpenIdMetadataCache[];
  rules: JwtRules;
}

export interface ValidateJwtDeps {
  file: string;
  /** The shared metadata cache for an openid-config URL. */
  metadataCache(url: string): OpenIdMetadataCache;
}

const ATTRIBUTES = [
  'id',
  'header-name',
  'query-parameter-name',
  'failed-validation-httpcode',
  'failed-validation-error-message',
  'require-expiration-time',
  'require-scheme',
  'require-signed-tokens',
  'clock-skew',
  'output-token-variable-name',
];

export function compileValidateJwt(element: PolicyElement, deps: ValidateJwtDeps): PolicyStatement {
  const r = new ElementReader(deps.file, element);
  r.allowAttributes(ATTRIBUTES, ['token-value']);
  r.noText();
  r.allowChildren(['openid-config', 'audiences', 'issuers', 'required-claims'], ['issuer-signing-keys', 'decryption-keys'], ['audiences', 'issuers', 'required-claims']);

  const headerName = r.optional('header-name');
  const queryName = r.optional('query-parameter-name');
  if ((headerName === undefined) === (queryName === undefined)) {
    throw r.error('exactly one of header-name, query-parameter-name or token-value must be specified');
  }
  const scheme = r.optional('require-scheme');
  let tokenSource: TokenSource;
  if (headerName !== undefined) {
    if (headerName.trim() === '') throw r.error('attribute header-name must not be empty');
    const isAuthorization = headerName.trim().toLowerCase() === 'authorization';
    if (scheme !== undefined && !isAuthorization) {
      throw r.error('require-scheme applies only to the Authorization header (APIM ignores it with a custom header-name); remove it');
    }
    tokenSource = { kind: 'header', name: headerName.trim().toLowerCase(), scheme: isAuthorization ? (scheme?.trim() || 'Bearer') : undefined };
  } else {
    if (scheme !== undefined) throw r.error('require-scheme applies only to the Authorization header; remove it');
    if (queryName!.trim() === '') throw r.error('attribute query-parameter-name must not be empty');
    tokenSource = { kind: 'query', name: queryName!.trim() };
  }
  if (!r.boolean('require-signed-tokens', true)) {
    throw r.error('require-signed-tokens="false" is not supported: this gateway accepts only signed tokens (RS256, PS256, RS512)');
  }

  const openIdConfigs = r.children('openid-config').map((child) => {
    const c = new ElementReader(deps.file, child);
    c.allowAttributes(['url']);
    c.noChildren();
    c.noText();
    const url = c.required('url').trim();
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw c.error(`url '${url}' is not a valid URL`);
    }
    if (parsed.protocol !== 'https:') throw c.error(`url '${url}' must be an https:// URL`);
    return deps.metadataCache(url);
  });
  if (openIdConfigs.length === 0) {
    throw r.error('an <openid-config url> is required (issuer-signing-keys is not supported by this gateway yet)');
  }

  const failedStatusCode = r.integer('failed-validation-httpcode', 401, 100, 599);
  const outputTokenVariableName = r.optional('output-token-variable-name');
  if (outputTokenVariableName !== undefined && outputTokenVariableName.trim() === '') throw r.error('attribute output-token-variable-name must not be empty');

  const config: ValidateJwtConfig = {
    tokenSource,
    failedStatusCode,
    failedMessage: r.optional('failed-validation-error-message'),
    outputTokenVariableName: outputTokenVariableName?.trim(),
    openIdConfigs,
    rules: {
      requireExpirationTime: r.boolean('require-expiration-time', true),
      clockSkewSeconds: r.integer('clock-skew', 0, 0, 86_400),
      audiences: listOf(deps.file, r.children('audiences')[0], 'audience'),
      issuers: listOf(deps.file, r.children('issuers')[0], 'issuer'),
      requiredClaims: requiredClaims(deps.file, r.children('required-claims')[0]),
    },
  };
  return new ValidateJwtStatement(element.line, config);
}

function listOf(file: string, element: PolicyElement | undefined, itemName: string): string[] | undefined {
  if (!element) return undefined;
  const r = new ElementReader(file, element);
  r.allowAttributes([]);
  r.noText();
  r.allowChildren([itemName]);
  const values = element.children.map((child) => {
    const c = new ElementReader(file, child);
    c.allowAttributes([]);
    c.noChildren();
    if (child.text === '') throw c.error('must not be empty');
    return child.text;
  });
  if (values.length === 0) throw r.error(`at least one <${itemName}> is required`);
  return values;
}

function requiredClaims(file: string, element: PolicyElement | undefined): RequiredClaim[] {
  if (!element) return [];
  const r = new ElementReader(file, element);
  r.allowAttributes([]);
  r.noText();
  r.allowChildren(['claim']);
  return element.children.map((child) => {
    const c = new ElementReader(file, child);
    c.allowAttributes(['name', 'match', 'separator']);
    c.noText();
    c.allowChildren(['value']);
    const match = c.optional('match') ?? 'all';
    if (match !== 'all' && match !== 'any') throw c.error(`attribute match must be "all" or "any", got '${match}'`);
    const separator = c.optional('separator');
    if (separator === '') throw c.error('attribute separator must not be empty');
    const values = child.children.map((v) => {
      const vr = new ElementReader(file, v);
      vr.allowAttributes([]);
      vr.noChildren();
      return v.text;
    });
    return { name: c.required('name').trim(), match, separator, values };
  });
}

class ValidateJwtStatement implements PolicyStatement {
  readonly name = 'validate-jwt';

  constructor(
    readonly line: number,
    readonly config: ValidateJwtConfig,
  ) {}

  async execute(ctx: PolicyContext): Promise<void> {
    const { config } = this;
    try {
      const token = extractToken(ctx, config.tokenSource);
      const validated = await validateJwt(token, this.keySource(), config.rules, ctx.now());
      if (config.outputTokenVariableName) ctx.variables.set(config.outputTokenVariableName, validated);
    } catch (err) {
      if (!(err instanceof JwtValidationFailure)) throw err;
      throw new ApimError(config.failedStatusCode, config.failedMessage ?? err.message, this.name, err.reason);
    }
  }

  private keySource(): SigningKeySource {
    const caches = this.config.openIdConfigs;
    return {
      current: () => Promise.all(caches.map((c) => c.get())),
      refresh: async () => {
        const refreshed = await Promise.all(caches.map((c) => c.refreshForUnknownKey()));
        if (refreshed.every((m) => m === undefined)) return undefined;
        return Promise.all(caches.map((c, i) => refreshed[i] ?? c.get())) as Promise<OpenIdMetadata[]>;
      },
    };
  }
}

function notPresent(): JwtValidationFailure {
  return new JwtValidationFailure('TokenNotPresent', 'JWT not present.');
}

function extractToken(ctx: PolicyContext, source: TokenSource): string {
  if (source.kind === 'query') {
    const value = ctx.request.query.get(source.name)?.trim();
    if (!value) throw notPresent();
    return value;
  }
  const raw = ctx.request.headers[source.name];
  const value = (Array.isArray(raw) ? raw[0] : raw === undefined ? undefined : String(raw))?.trim();
  if (!value) throw notPresent();
  if (source.scheme === undefined) return value;
  const space = value.indexOf(' ');
  if (space < 0 || value.slice(0, space).toLowerCase() !== source.scheme.toLowerCase()) throw notPresent();
  const token = value.slice(space + 1).trim();
  if (!token) throw notPresent();
  return token;
}
