import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { OpenIdMetadataCache } from './openid-metadata-cache';
import { compilePolicyDocument, loadPolicyDocument, PolicyLoadOptions } from './policy-document';
import { PolicyLoadError } from './policy-xml';

const FILE = 'test/policy.xml';
const NAMED_VALUES = {
  'entra-instance': 'https://localhost:4443',
  'tenant-id': 'tid',
  'api-app-id': 'app-guid',
  'api-app-id-uri': 'api://orders',
};
const opts: PolicyLoadOptions = {
  namedValues: NAMED_VALUES,
  metadataCache: (url) => new OpenIdMetadataCache(url),
};

function jwtPolicy(inner = '', attributes = 'header-name="Authorization"'): string {
  return [
    '<policies>',
    '  <inbound>',
    '    <base />',
    `    <validate-jwt ${attributes}>`,
    '      <openid-config url="{{entra-instance}}/{{tenant-id}}/v2.0/.well-known/openid-configuration" />',
    `      ${inner}`,
    '    </validate-jwt>',
    '  </inbound>',
    '</policies>',
  ].join('\n');
}

function loadError(xml: string): PolicyLoadError {
  try {
    compilePolicyDocument(xml, FILE, opts);
  } catch (err) {
    if (err instanceof PolicyLoadError) return err;
    throw err;
  }
  throw new Error('expected the policy to fail to load');
}

describe('policy document', () => {
  it('loads sections, treats <base /> as a no-op at API scope and forwards by default', () => {
    const doc = compilePolicyDocument(
      jwtPolicy('<audiences><audience>{{api-app-id}}</audience></audiences>'),
      FILE,
      opts,
    );
    expect(doc.inbound.map((s) => s.name)).toEqual(['validate-jwt']);
    expect(doc.inbound[0]!.line).toBe(4);
    expect(doc.outbound).toEqual([]);
    expect(doc.backend.timeoutMs).toBeUndefined(); // the gateway's upstreamTimeoutMs applies
  });

  it('loads the real apps/api/apim/policy.xml with its four named values', () => {
    const doc = loadPolicyDocument(resolve(__dirname, '../../../apps/api/apim/policy.xml'), opts);
    expect(doc.inbound.map((s) => s.name)).toEqual(['validate-jwt']);
  });

  it('names the unknown named value, the file, the line and the element', () => {
    const err = loadError(jwtPolicy('<audiences><audience>{{no-such-value}}</audience></audiences>'));
    expect(err.message).toBe("test/policy.xml:6: <audience>: text: unknown named value 'no-such-value'");
    expect(err).toMatchObject({ file: FILE, line: 6, element: 'audience' });
  });

  it('refuses an unsupported policy element with file, line and element', () => {
    const err = loadError(
      '<policies>\n<inbound>\n<base />\n<quota-by-key calls="10" renewal-period="60" counter-key="x" />\n</inbound>\n</policies>',
    );
    expect(err.message).toMatch(/^test\/policy\.xml:4: <quota-by-key>: is not supported by this gateway yet/);
    expect(loadError('<policies><inbound><frobnicate /></inbound></policies>').message).toMatch(
      /<frobnicate>: is not a policy this gateway knows/,
    );
  });

  it('refuses unsupported validate-jwt children and attributes', () => {
    expect(
      loadError(jwtPolicy('<issuer-signing-keys><key certificate-id="partner-cert" /></issuer-signing-keys>'))
        .message,
    ).toBe('test/policy.xml:6: <key>: attribute certificate-id is not supported by this gateway yet');
    expect(loadError(jwtPolicy('<decryption-keys />')).message).toMatch(/:6: <decryption-keys>:/);
    expect(loadError(jwtPolicy('<whatever />')).message).toMatch(
      /:6: <whatever>: unknown or unsupported element in <validate-jwt>/,
    );
    expect(loadError(jwtPolicy('', 'header-name="Authorization" colour="blue"')).message).toBe(
      'test/policy.xml:4: <validate-jwt>: unknown or unsupported attribute colour',
    );
    expect(loadError(jwtPolicy('', 'header-name="Authorization" token-value="abc"')).message).toMatch(
      /:4: <validate-jwt>: exactly one of header-name, query-parameter-name or token-value/,
    );
    expect(
      loadError(jwtPolicy('', 'header-name="Authorization" require-signed-tokens="false"')).message,
    ).toMatch(/only signed tokens/);
    expect(loadError(jwtPolicy('', 'header-name="X-Token" require-scheme="Bearer"')).message).toMatch(
      /require-scheme applies only to the Authorization header/,
    );
    expect(loadError(jwtPolicy('', 'failed-validation-httpcode="401"')).message).toMatch(
      /exactly one of header-name, query-parameter-name or token-value/,
    );
    expect(loadError(jwtPolicy('', 'header-name="Authorization" clock-skew="soon"')).message).toMatch(
      /clock-skew must be an integer/,
    );
    expect(
      loadError(
        jwtPolicy(
          '<required-claims><claim name="aud" match="most"><value>x</value></claim></required-claims>',
        ),
      ).message,
    ).toMatch(/:6: <claim>: attribute match must be "all" or "any"/);
  });

  it('decodes character references as APIM does: &#64;( is an expression, &amp;#64; is text; undefined entities refused', () => {
    expect(
      loadError(
        jwtPolicy('<audiences><audience>&#64;(context.Request.OriginalUrl.Host)</audience></audiences>'),
      ).message,
    ).toMatch(/:6: <audience>: text: policy expressions .* are not supported here/);
    expect(
      loadError(jwtPolicy('', 'header-name="&#x40;{return &quot;Authorization&quot;;}"')).message,
    ).toMatch(/:4: <validate-jwt>: attribute header-name: policy expressions/);
    // A literal "&#64;" (written &amp;#64;) stays text.
    const doc = compilePolicyDocument(
      jwtPolicy('<audiences><audience>&amp;#64;orders</audience></audiences>'),
      FILE,
      opts,
    );
    expect(doc.inbound.map((s) => s.name)).toEqual(['validate-jwt']);
    // A bare & in a comment is literal text, as XML says.
    expect(() =>
      compilePolicyDocument(
        `<!-- auth & routing -->\n${jwtPolicy('<audiences><audience>x</audience></audiences>')}`,
        FILE,
        opts,
      ),
    ).not.toThrow();
    expect(loadError(jwtPolicy('<audiences><audience>a&nbsp;b</audience></audiences>')).message).toMatch(
      /:6: not well-formed XML: '&nbsp;' is not an entity XML defines/,
    );
  });

  it('refuses policy expressions, also when they arrive through a named value', () => {
    expect(
      loadError(jwtPolicy('<audiences><audience>@(context.Request.OriginalUrl.Host)</audience></audiences>'))
        .message,
    ).toMatch(/:6: <audience>: text: policy expressions .* are not supported here/);
    expect(loadError(jwtPolicy('', 'header-name="@{return &quot;Authorization&quot;;}"')).message).toMatch(
      /:4: <validate-jwt>: attribute header-name: policy expressions/,
    );
    const sneaky = compilePolicyDocument.bind(
      null,
      jwtPolicy('<audiences><audience>{{api-app-id}}</audience></audiences>'),
      FILE,
      {
        ...opts,
        namedValues: { ...NAMED_VALUES, 'api-app-id': '@(context.Variables["x"])' },
      },
    );
    expect(sneaky).toThrow(/:6: <audience>: text: policy expressions/);
  });

  it('requires https for openid-config', () => {
    const err = compilePolicyDocument.bind(null, jwtPolicy(), FILE, {
      ...opts,
      namedValues: { ...NAMED_VALUES, 'entra-instance': 'http://localhost:1' },
    });
    expect(err).toThrow(
      /:5: <openid-config>: url 'http:\/\/localhost:1\/tid\/v2\.0\/\.well-known\/openid-configuration' must be an https:\/\/ URL/,
    );
  });

  it('reports malformed XML and a wrong root with a line', () => {
    expect(loadError('<policies>\n<inbound>\n</outbound>\n</policies>').message).toMatch(
      /^test\/policy\.xml:3: not well-formed XML/,
    );
    expect(loadError('<policy />').message).toBe(
      'test/policy.xml:1: <policy>: the root element must be <policies>',
    );
    expect(loadError('<!DOCTYPE x [<!ENTITY a "b">]><policies />').message).toMatch(/DOCTYPE is not allowed/);
  });

  it('checks sections and backend', () => {
    expect(loadError('<policies><inbound /><inbound /></policies>').message).toMatch(
      /<inbound>: <inbound> may appear only once/,
    );
    expect(
      loadError('<policies><outbound><validate-jwt header-name="Authorization" /></outbound></policies>')
        .message,
    ).toMatch(/<validate-jwt>: not allowed in the outbound section/);
    expect(loadError('<policies><backend /></policies>').message).toMatch(
      /<backend>: the backend section must contain exactly one/,
    );
    expect(
      loadError('<policies><backend><forward-request follow-redirects="true" /></backend></policies>')
        .message,
    ).toMatch(/<forward-request>: attribute follow-redirects is not supported/);
    expect(
      compilePolicyDocument(
        '<policies><backend><forward-request timeout="20" /></backend></policies>',
        FILE,
        opts,
      ).backend.timeoutMs,
    ).toBe(20_000);
  });

  it('checks set-header and return-response', () => {
    expect(
      loadError(
        '<policies><inbound><set-header name="x" exists-action="replace"><value>1</value></set-header></inbound></policies>',
      ).message,
    ).toMatch(/<set-header>: attribute exists-action must be/);
    expect(
      loadError(
        '<policies><inbound><set-header name="content-length"><value>1</value></set-header></inbound></policies>',
      ).message,
    ).toMatch(/managed by the gateway/);
    expect(loadError('<policies><inbound><set-header name="x" /></inbound></policies>').message).toMatch(
      /at least one <value> is required/,
    );
    expect(
      loadError('<policies><inbound><return-response response-variable-name="r" /></inbound></policies>')
        .message,
    ).toMatch(/attribute response-variable-name is not supported/);
  });

  it('reports a missing file by name', () => {
    expect(() => loadPolicyDocument('/nonexistent/policy.xml', opts)).toThrow(
      /^\/nonexistent\/policy\.xml: cannot read policy file/,
    );
  });
});
