import { describe, expect, it } from 'vitest';
import type { PolicyContext } from './policy-context';
import { compileExpression, ExpressionError, expressionString } from './policy-expression';
import { compilePolicyDocument } from './policy-document';
import { OpenIdMetadataCache } from './openid-metadata-cache';
import { PolicyLoadError } from './policy-xml';

function context(overrides: Partial<PolicyContext> = {}): PolicyContext {
  const url = '/orders?page=2&tag=a&tag=b';
  return {
    section: 'inbound',
    request: {
      method: 'GET',
      url,
      query: new URL(url, 'https://x.invalid').searchParams,
      headers: { 'x-partner': 'contoso', accept: ['a', 'b'], authorization: 'Bearer abc' },
      clientIp: '10.1.2.3',
      clientCertificate: {
        thumbprint: 'AB12',
        subject: 'CN=partner',
        issuer: 'CN=ca',
        serialNumber: '01',
        notBefore: new Date(0),
        notAfter: new Date(0),
        trusted: true,
        issuerThumbprint: undefined,
        dnsNames: [],
      },
    },
    response: undefined,
    variables: new Map<string, unknown>([
      ['jwt', { header: { alg: 'RS256' }, claims: { azp: 'client-1', roles: ['A', 'B'], exp: 5 } }],
      ['tier', 'gold'],
    ]),
    lastError: undefined,
    returned: false,
    now: () => 0,
    subscription: { id: 'sub-1' },
    ...overrides,
  };
}

const run = (source: string, ctx = context()) => compileExpression(source).evaluate(ctx);

describe('policy expressions (the supported subset)', () => {
  it('reads request headers, IP address, method, path and query', () => {
    expect(run('@(context.Request.Headers.GetValueOrDefault("X-Partner", "none"))')).toBe('contoso');
    expect(run('@(context.Request.Headers.GetValueOrDefault("missing", "none"))')).toBe('none');
    expect(run('@(context.Request.Headers.GetValueOrDefault("missing"))')).toBeNull();
    expect(run('@(context.Request.Headers.GetValueOrDefault("Accept", ""))')).toBe('a,b');
    expect(run('@(context.Request.IpAddress)')).toBe('10.1.2.3');
    expect(run('@(context.Request.Method + " " + context.Request.Url.Path)')).toBe('GET /orders');
    expect(run('@(context.Request.Url.Query.GetValueOrDefault("tag", ""))')).toBe('a,b');
  });

  it('reads the subscription, the client certificate and variables, with casts', () => {
    expect(run('@(context.Subscription.Id)')).toBe('sub-1');
    expect(run('@(context.Subscription.Id)', context({ subscription: undefined }))).toBeNull();
    expect(run('@("s:" + context.Subscription?.Id)', context({ subscription: undefined }))).toBe('s:');
    expect(run('@(context.Request.Certificate.Thumbprint)')).toBe('AB12');
    expect(run('@(((Jwt)context.Variables["jwt"]).Claims.GetValueOrDefault("azp", ""))')).toBe('client-1');
    expect(run('@(((Jwt)context.Variables["jwt"]).Claims.GetValueOrDefault("roles", ""))')).toBe('A,B');
    expect(run('@(((Jwt)context.Variables["jwt"]).Claims.GetValueOrDefault("nope", "dflt"))')).toBe('dflt');
    expect(run('@((string)context.Variables["tier"] == "gold")')).toBe(true);
    expect(run('@(context.Variables.ContainsKey("tier") && !context.Variables.ContainsKey("x"))')).toBe(true);
    expect(run('@("t-" + context.Variables["tier"])')).toBe('t-gold');
  });

  it('concatenates with + and compares with == / != (and ints with < <= > >=)', () => {
    expect(
      run('@(context.Request.IpAddress + ":" + context.Request.Headers.GetValueOrDefault("x-partner", ""))'),
    ).toBe('10.1.2.3:contoso');
    expect(run('@(context.Request.Headers.GetValueOrDefault("x-partner", "") == "contoso")')).toBe(true);
    expect(run('@(context.Request.Headers.GetValueOrDefault("x-partner", "") != "contoso")')).toBe(false);
    expect(run('@(context.Request.Headers.GetValueOrDefault("missing") == null)')).toBe(true);
    const withResponse = context({ section: 'outbound', response: { statusCode: 204, headers: {} } });
    expect(
      run('@(context.Response.StatusCode >= 200 && context.Response.StatusCode < 300)', withResponse),
    ).toBe(true);
    expect(
      run('@(context.Response.StatusCode == 200 || context.Response.StatusCode == 204)', withResponse),
    ).toBe(true);
    expect(compileExpression('@(context.Response.StatusCode == 200)').usesResponse).toBe(true);
    expect(compileExpression('@(context.Request.IpAddress)').usesResponse).toBe(false);
    expect(run('@("a\\"b" + 1 + true)')).toBe('a"b1True');
    expect(expressionString(null)).toBe('');
  });

  it('refuses everything outside the subset, with a reason', () => {
    const refused: Array<[string, RegExp]> = [
      ['@{ return "x"; }', /multi-statement/],
      ['@(System.IO.File.ReadAllText("/etc/passwd"))', /unsupported name 'System'/],
      ['@(context.Request.Body.As<string>())', /unsupported member context\.Request\.Body/],
      ['@(context.Request.Headers["x"])', /indexer \[\] is supported only on context\.Variables/],
      ['@(context.Request.Headers.GetValueOrDefault(1, "x"))', /argument 1 .* must be a string/],
      ['@(context.Request.Headers.GetValueOrDefault())', /takes 1-2 argument/],
      ['@(context.Request.IpAddress.ToUpper())', /unsupported method string\.ToUpper/],
      ['@(context.Variables["x"] == "y")', /cannot compare object == string/],
      ['@(context.Request.IpAddress == 1)', /cannot compare string == int/],
      ['@(context.Request.IpAddress * 2)', /unsupported character '\*'/],
      ['@((int)context.Variables["x"])', /unsupported cast \(int\)/],
      ['@(context.Request.IpAddress', /is not an @\(…\) expression/],
      ['@("unterminated)', /unterminated string/],
      ['@(1.5)', /integers only/],
      ['@(context.Response.StatusCode > "a")', /needs int operands/],
      ['@(!context.Request.IpAddress)', /needs bool operands/],
      ['@(context)', /context is not a value/],
      ['@(context.Request.Headers)', /Headers is not a value/],
    ];
    for (const [source, why] of refused) {
      let error: unknown;
      try {
        compileExpression(source);
      } catch (err) {
        error = err;
      }
      expect(error, source).toBeInstanceOf(ExpressionError);
      expect((error as Error).message, source).toMatch(why);
    }
  });

  it('fails at run time on a missing variable and a wrong cast (APIM: ExpressionValueEvaluationFailure)', () => {
    expect(() => run('@((string)context.Variables["missing"])')).toThrow(/no such variable/);
    expect(() => run('@(((Jwt)context.Variables["tier"]).Claims.GetValueOrDefault("azp", ""))')).toThrow(
      /cast/,
    );
  });

  it('is refused at load time with file, line and element where a policy does not take expressions or the type is wrong', () => {
    const opts = { namedValues: {}, metadataCache: (url: string) => new OpenIdMetadataCache(url) };
    const load = (xml: string) => () => compilePolicyDocument(xml, 'p.xml', opts);
    expect(
      load(
        '<policies>\n<inbound>\n<rate-limit-by-key calls="1" renewal-period="1" counter-key="@(context.Request.Body)" />\n</inbound>\n</policies>',
      ),
    ).toThrow(PolicyLoadError);
    expect(
      load(
        '<policies>\n<inbound>\n<rate-limit-by-key calls="1" renewal-period="1" counter-key="@(context.Request.Body)" />\n</inbound>\n</policies>',
      ),
    ).toThrow(
      /^p\.xml:3: <rate-limit-by-key>: attribute counter-key: policy expression not supported by this gateway: unsupported member context\.Request\.Body/,
    );
    expect(
      load(
        '<policies>\n<inbound>\n<rate-limit-by-key calls="1" renewal-period="1" counter-key="k" increment-condition="@(context.Request.IpAddress)" />\n</inbound>\n</policies>',
      ),
    ).toThrow(
      /^p\.xml:3: <rate-limit-by-key>: attribute increment-condition: the expression is a string, expected bool/,
    );
    expect(
      load(
        '<policies>\n<inbound>\n<set-header name="x">\n<value>@(context.Nope)</value>\n</set-header>\n</inbound>\n</policies>',
      ),
    ).toThrow(/^p\.xml:4: <value>: text: policy expression not supported/);
    expect(
      load(
        '<policies>\n<inbound>\n<rate-limit-by-key calls="@(5)" renewal-period="1" counter-key="k" />\n</inbound>\n</policies>',
      ),
    ).toThrow(
      /^p\.xml:3: <rate-limit-by-key>: attribute calls: policy expressions .* are not supported here/,
    );
  });
});
