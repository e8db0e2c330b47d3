/**
 * `<validate-jwt>`: compiled from the policy XML at load time (every attribute and child
 * element checked, unsupported ones refused), then run per request.
 *
 * Supported: header-name (with the Authorization scheme check, see below), query-parameter-name,
 * token-value (a policy expression giving the token, or a literal), failed-validation-httpcode
 * (401), failed-validation-error-message, require-expiration-time (true), require-scheme,
 * require-signed-tokens (only true), clock-skew (0 s), output-token-variable-name, id; children
 * openid-config (zero or more), issuer-signing-keys (`<key>` with base64 symmetric key text, or
 * `n` + `e` RSA attributes; optional `id` = the token's `kid`), audiences, issuers,
 * required-claims. Refused: decryption-keys, and `<key certificate-id>` (the gateway has no
 * APIM certificate store; give the key as `n`/`e`).
 *
 * Token source: APIM requires exactly one of header-name, query-parameter-name, token-value
 * (there is no default header). When the header is `Authorization` the value must be
 * `<scheme> <token>` with the scheme `require-scheme` names, `Bearer` when it is not set.
 * APIM ignores `require-scheme` on any other header; this gateway refuses that combination
 * instead of ignoring an attribute.
 *
 * Verified tokens are remembered per policy instance (`VerifiedTokenCache` of @certflow/claims); lifetime is
 * still checked on every request and a change of signing keys drops the entries.
 */
import { DEFAULT_VERIFIED_TOKEN_CACHE_SIZE, VerifiedTokenCache } from '@certflow/claims';
import { ApimError } from './apim-errors';
import type { JWK } from 'jose';
import {
  JwtRules,
  JwtValidationFailure,
  RequiredClaim,
  SigningKeySource,
  STATIC_KEYS_ISSUER,
  cachedValidation,
  ValidatedJwt,
  validateJwt,
} from './jwt-validation';
import { OpenIdMetadata, OpenIdMetadataCache } from './openid-metadata-cache';
import type { PolicyContext, PolicyStatement } from './policy-context';
import { CompiledExpression, ExpressionError, expressionString } from './policy-expression';
import { ElementReader, PolicyElement } from './policy-xml';

export type TokenSource =
  | { kind: 'header'; name: string; scheme: string | undefined }
  | { kind: 'query'; name: string }
  | { kind: 'value'; value: string | CompiledExpression };

export interface ValidateJwtConfig {
  tokenSource: TokenSource;
  failedStatusCode: number;
  failedMessage: string | undefined;
  outputTokenVariableName: string | undefined;
  openIdConfigs: OpenIdMetadataCache[];
  /** `<issuer-signing-keys>`, as one fixed key set (undefined when there are none). */
  staticKeys: OpenIdMetadata | undefined;
  rules: JwtRules;
}

export interface ValidateJwtDeps {
  file: string;
  /** The shared metadata cache for an openid-config URL. */
  metadataCache(url: string): OpenIdMetadataCache;
  /** Verified tokens remembered per policy instance (default 10,000; 0 = off). */
  verifiedTokenCacheSize?: number;
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
  'token-value',
];

export function compileValidateJwt(element: PolicyElement, deps: ValidateJwtDeps): PolicyStatement {
  const r = new ElementReader(deps.file, element);
  r.allowAttributes(ATTRIBUTES);
  r.noText();
  r.allowChildren(
    ['openid-config', 'issuer-signing-keys', 'audiences', 'issuers', 'required-claims'],
    ['decryption-keys'],
    ['issuer-signing-keys', 'audiences', 'issuers', 'required-claims'],
  );

  const headerName = r.optional('header-name');
  const queryName = r.optional('query-parameter-name');
  const tokenValue = r.optional('token-value');
  if ([headerName, queryName, tokenValue].filter((v) => v !== undefined).length !== 1) {
    throw r.error('exactly one of header-name, query-parameter-name or token-value must be specified');
  }
  const scheme = r.optional('require-scheme');
  let tokenSource: TokenSource;
  if (headerName !== undefined) {
    if (headerName.trim() === '') throw r.error('attribute header-name must not be empty');
    const isAuthorization = headerName.trim().toLowerCase() === 'authorization';
    if (scheme !== undefined && !isAuthorization) {
      throw r.error(
        'require-scheme applies only to the Authorization header (APIM ignores it with a custom header-name); remove it',
      );
    }
    tokenSource = {
      kind: 'header',
      name: headerName.trim().toLowerCase(),
      scheme: isAuthorization ? scheme?.trim() || 'Bearer' : undefined,
    };
  } else if (queryName !== undefined) {
    if (scheme !== undefined)
      throw r.error('require-scheme applies only to the Authorization header; remove it');
    if (queryName.trim() === '') throw r.error('attribute query-parameter-name must not be empty');
    tokenSource = { kind: 'query', name: queryName.trim() };
  } else {
    if (scheme !== undefined)
      throw r.error('require-scheme applies only to the Authorization header; remove it');
    if (tokenValue!.trim() === '') throw r.error('attribute token-value must not be empty');
    const expression = r.expression(tokenValue, 'attribute token-value', ['string', 'null', 'object']);
    tokenSource = { kind: 'value', value: expression ?? tokenValue!.trim() };
  }
  if (!r.boolean('require-signed-tokens', true)) {
    throw r.error(
      'require-signed-tokens="false" is not supported: this gateway accepts only signed tokens (RS256, PS256, RS512)',
    );
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
  const staticKeys = issuerSigningKeys(deps.file, r.children('issuer-signing-keys')[0]);
  if (openIdConfigs.length === 0 && !staticKeys) {
    throw r.error(
      'an <openid-config url> or <issuer-signing-keys> is required: without keys no token can be validated',
    );
  }
  const symmetricKeys = staticKeys?.jwks.keys.some((k) => k.kty === 'oct') ?? false;

  const failedStatusCode = r.integer('failed-validation-httpcode', 401, 100, 599);
  const outputTokenVariableName = r.optional('output-token-variable-name');
  if (outputTokenVariableName !== undefined && outputTokenVariableName.trim() === '')
    throw r.error('attribute output-token-variable-name must not be empty');

  const config: ValidateJwtConfig = {
    tokenSource,
    failedStatusCode,
    failedMessage: r.optional('failed-validation-error-message'),
    outputTokenVariableName: outputTokenVariableName?.trim(),
    openIdConfigs,
    staticKeys,
    rules: {
      symmetricKeys,
      requireExpirationTime: r.boolean('require-expiration-time', true),
      clockSkewSeconds: r.integer('clock-skew', 0, 0, 86_400),
      audiences: listOf(deps.file, r.children('audiences')[0], 'audience'),
      issuers: listOf(deps.file, r.children('issuers')[0], 'issuer'),
      requiredClaims: requiredClaims(deps.file, r.children('required-claims')[0]),
    },
  };
  return new ValidateJwtStatement(
    element.line,
    config,
    new VerifiedTokenCache<ValidatedJwt>(deps.verifiedTokenCacheSize ?? DEFAULT_VERIFIED_TOKEN_CACHE_SIZE),
  );
}

const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** base64 or base64url text → base64url, or undefined when it is neither. */
function toBase64Url(text: string): string | undefined {
  const compact = text.replace(/\s+/g, '');
  if (compact === '' || !BASE64.test(compact)) return undefined;
  return Buffer.from(compact.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('base64url');
}

/**
 * `<issuer-signing-keys>`: each `<key>` is a base64 symmetric key (its text; HS256/384/512, at
 * least 128 bits as .NET requires) or an RSA public key as `n` and `e` (base64 or base64url; at
 * least 2048 bits); `id` is matched against the token's `kid`. `certificate-id` names a
 * certificate uploaded to API Management, which this gateway does not have: refused.
 */
function issuerSigningKeys(file: string, element: PolicyElement | undefined): OpenIdMetadata | undefined {
  if (!element) return undefined;
  const r = new ElementReader(file, element);
  r.allowAttributes([]);
  r.noText();
  r.allowChildren(['key']);
  const keys: JWK[] = element.children.map((child) => {
    const c = new ElementReader(file, child);
    c.allowAttributes(['id', 'n', 'e'], ['certificate-id']);
    c.noChildren();
    const id = c.optional('id')?.trim();
    if (id === '') throw c.error('attribute id must not be empty');
    const kid = id === undefined ? {} : { kid: id };
    const n = c.optional('n');
    const e = c.optional('e');
    if (n !== undefined || e !== undefined) {
      if (child.text !== '')
        throw c.error('a <key> is either a base64 symmetric key (text) or an RSA key (n and e), not both');
      if (n === undefined || e === undefined) throw c.error('an RSA <key> needs both n and e');
      const nUrl = toBase64Url(n);
      const eUrl = toBase64Url(e);
      if (!nUrl) throw c.error('attribute n is not base64');
      if (!eUrl) throw c.error('attribute e is not base64');
      if (Buffer.from(nUrl, 'base64url').length < 256)
        throw c.error('the RSA modulus n is shorter than 2048 bits');
      return { kty: 'RSA', n: nUrl, e: eUrl, ...kid };
    }
    const k = toBase64Url(child.text);
    if (!k) throw c.error('a <key> needs a base64 symmetric key as its text, or n and e attributes');
    if (Buffer.from(k, 'base64url').length < 16) throw c.error('the symmetric key is shorter than 128 bits');
    return { kty: 'oct', k, ...kid };
  });
  if (keys.length === 0) throw r.error('at least one <key> is required');
  return { issuer: STATIC_KEYS_ISSUER, jwksUri: '', jwks: { keys } };
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
    if (match !== 'all' && match !== 'any')
      throw c.error(`attribute match must be "all" or "any", got '${match}'`);
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

  private readonly keys: SigningKeySource;

  constructor(
    readonly line: number,
    readonly config: ValidateJwtConfig,
    private readonly cache: VerifiedTokenCache<ValidatedJwt>,
  ) {
    this.keys = keySourceOf(config);
  }

  /** Synchronous for a token verified before (the common case); a promise when keys or the signature must be checked. */
  execute(ctx: PolicyContext): Promise<void> | void {
    const { config } = this;
    try {
      const token = extractToken(ctx, config.tokenSource);
      const cached = cachedValidation(token, this.keys, config.rules, ctx.now(), this.cache);
      if (cached) return this.accept(ctx, cached);
      return validateJwt(token, this.keys, config.rules, ctx.now(), this.cache).then(
        (validated) => this.accept(ctx, validated),
        (err: unknown) => {
          throw this.refusal(err);
        },
      );
    } catch (err) {
      throw this.refusal(err);
    }
  }

  private accept(ctx: PolicyContext, validated: ValidatedJwt): void {
    if (this.config.outputTokenVariableName)
      ctx.variables.set(this.config.outputTokenVariableName, validated);
  }

  private refusal(err: unknown): unknown {
    if (!(err instanceof JwtValidationFailure)) return err;
    return new ApimError(
      this.config.failedStatusCode,
      this.config.failedMessage ?? err.message,
      this.name,
      err.reason,
    );
  }
}

/** The openid-config key sets (cached objects: a new pull makes new ones), then the fixed issuer-signing-keys. */
function keySourceOf(config: ValidateJwtConfig): SigningKeySource {
  const caches = config.openIdConfigs;
  const fixed = config.staticKeys ? [config.staticKeys] : [];
  // The same array while the documents are the same objects: the verified-token cache compares them.
  let last: OpenIdMetadata[] = [];
  return {
    current: async () => [...(await Promise.all(caches.map((c) => c.get()))), ...fixed],
    peek: () => {
      for (let i = 0; i < caches.length; i++) {
        const doc = caches[i]!.peek();
        if (!doc) return undefined;
        if (last[i] !== doc) last = [...caches.map((c) => c.peek()!), ...fixed];
      }
      return caches.length === 0 ? fixed : last;
    },
    refresh: async () => {
      const refreshed = await Promise.all(caches.map((c) => c.refreshForUnknownKey()));
      if (refreshed.every((m) => m === undefined)) return undefined;
      return [...(await Promise.all(caches.map((c, i) => refreshed[i] ?? c.get()))), ...fixed];
    },
  };
}

function notPresent(): JwtValidationFailure {
  return new JwtValidationFailure('TokenNotPresent', 'JWT not present.');
}

function extractToken(ctx: PolicyContext, source: TokenSource): string {
  if (source.kind === 'value') {
    if (typeof source.value === 'string') return source.value;
    let value: string;
    try {
      value = expressionString(source.value.evaluate(ctx)).trim();
    } catch (err) {
      if (err instanceof ExpressionError)
        throw new ApimError(
          500,
          'Expression evaluation failed.',
          'validate-jwt',
          'ExpressionValueEvaluationFailure',
        );
      throw err;
    }
    if (!value) throw notPresent();
    return value;
  }
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
