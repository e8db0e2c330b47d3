import { VerifiedTokenCache } from '@certflow/claims';
import { importPKCS8, JWTPayload, SignJWT } from 'jose';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunningGateway, startGateway } from './gateway';
import {
  JwtRules,
  JwtValidationFailure,
  SigningKeySource,
  ValidatedJwt,
  validateJwt,
} from './jwt-validation';
import type { OpenIdMetadata } from './openid-metadata-cache';
import {
  accessTokenClaims,
  httpsCall,
  newSigningKey,
  SigningKey,
  startEchoUpstream,
  startTestIssuer,
  tempStateDir,
  EchoUpstream,
  TestIssuer,
} from './test-servers.test-helpers';
import { OffsetClock } from '@certflow/clock';

const ISSUER = 'https://issuer.test/tid/v2.0';
const AUD = 'api://orders';
const rules: JwtRules = {
  requireExpirationTime: true,
  clockSkewSeconds: 0,
  symmetricKeys: false,
  issuers: undefined,
  audiences: [AUD],
  requiredClaims: [],
};

function keySetOf(...keys: SigningKey[]): OpenIdMetadata {
  return {
    issuer: ISSUER,
    jwksUri: 'https://issuer.test/keys',
    jwks: { keys: keys.map((k) => k.publicJwk) },
  };
}

/** A key source whose current set the test replaces, as the openid-config cache does after a pull. */
function keySource(initial: OpenIdMetadata): { source: SigningKeySource; set(m: OpenIdMetadata): void } {
  let current = initial;
  return {
    source: { current: async () => [current], refresh: async () => undefined },
    set: (m) => (current = m),
  };
}

async function sign(key: SigningKey, claims: JWTPayload): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: key.kid })
    .sign(await importPKCS8(key.privateKeyPem, 'RS256'));
}

const nowS = (): number => Math.floor(Date.now() / 1000);
const claims = (overrides: JWTPayload = {}): JWTPayload => ({
  iss: ISSUER,
  aud: AUD,
  iat: nowS(),
  nbf: nowS(),
  exp: nowS() + 3600,
  sub: randomUUID(),
  ...overrides,
});

async function failure(p: Promise<unknown>): Promise<JwtValidationFailure> {
  try {
    await p;
  } catch (err) {
    if (err instanceof JwtValidationFailure) return err;
    throw err;
  }
  throw new Error('expected a validation failure');
}

describe('verified-token cache (validateJwt)', () => {
  const key = newSigningKey();

  it('verifies once, then answers from the cache with the same claims', async () => {
    const { source } = keySource(keySetOf(key));
    const cache = new VerifiedTokenCache<ValidatedJwt>(100);
    const token = await sign(key, claims());
    const first = await validateJwt(token, source, rules, Date.now(), cache);
    const second = await validateJwt(token, source, rules, Date.now(), cache);
    expect(second.claims).toEqual(first.claims);
    expect({ hits: cache.hits, misses: cache.misses, size: cache.size }).toEqual({
      hits: 1,
      misses: 1,
      size: 1,
    });
  });

  it('finds entries by the end of the signature but answers only the exact token: a cached signature on another payload is refused', async () => {
    const { source } = keySource(keySetOf(key));
    const cache = new VerifiedTokenCache<ValidatedJwt>(100);
    const token = await sign(key, claims({ roles: ['Orders.Read'] }));
    await validateJwt(token, source, rules, Date.now(), cache);
    const [header, , signature] = token.split('.');
    const raised = Buffer.from(JSON.stringify(claims({ roles: ['Orders.Read', 'Admin'] }))).toString(
      'base64url',
    );
    await expect(
      validateJwt(`${header}.${raised}.${signature}`, source, rules, Date.now(), cache),
    ).rejects.toThrow(/Signature validation failed/);
    // The genuine token is still answered from the cache.
    const hits = cache.hits;
    expect((await validateJwt(token, source, rules, Date.now(), cache)).claims['roles']).toEqual([
      'Orders.Read',
    ]);
    expect(cache.hits).toBe(hits + 1);
  });

  it('refuses a cached token once exp has passed (clock skew applied exactly as on the signature path)', async () => {
    const { source } = keySource(keySetOf(key));
    const cache = new VerifiedTokenCache<ValidatedJwt>(100);
    const exp = nowS() + 60;
    const token = await sign(key, claims({ exp }));
    const skewed = { ...rules, clockSkewSeconds: 30 };
    await validateJwt(token, source, skewed, Date.now(), cache);
    // exp + skew - 1 s: still valid, from the cache.
    await validateJwt(token, source, skewed, (exp + 29) * 1000, cache);
    expect(cache.hits).toBe(1);
    // exp + skew: expired (jose: exp <= now - skew), and the entry is gone.
    const err = await failure(validateJwt(token, source, skewed, (exp + 30) * 1000, cache));
    expect(err.reason).toBe('TokenExpired');
    expect(err.message).toMatch(/^Lifetime validation failed\. The token is expired\./);
    expect(cache.size).toBe(0);
    // Without the cache the same instant gives the same answer.
    expect((await failure(validateJwt(token, source, skewed, (exp + 30) * 1000))).message).toBe(err.message);
  });

  it('forgets entries when the key set changes, and refuses a token whose key disappeared', async () => {
    const other = newSigningKey();
    const ks = keySource(keySetOf(key, other));
    const cache = new VerifiedTokenCache<ValidatedJwt>(100);
    const token = await sign(key, claims());
    await validateJwt(token, ks.source, rules, Date.now(), cache);
    ks.set(keySetOf(other)); // re-fetched JWKS without the token's key
    const err = await failure(validateJwt(token, ks.source, rules, Date.now(), cache));
    expect(err.reason).toBe('TokenSignatureKeyNotFound');
    expect(cache.hits).toBe(0);
    expect(cache.size).toBe(0);
  });

  it('never answers a tampered token from the cache, and never caches a failure', async () => {
    const { source } = keySource(keySetOf(key));
    const cache = new VerifiedTokenCache<ValidatedJwt>(100);
    const token = await sign(key, claims());
    await validateJwt(token, source, rules, Date.now(), cache);
    const [h, p, s] = token.split('.') as [string, string, string];
    const forgedPayload = Buffer.from(JSON.stringify({ ...claims(), roles: ['Orders.Write'] })).toString(
      'base64url',
    );
    const tampered = [
      `${h}.${forgedPayload}.${s}`,
      `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`,
    ];
    for (const t of tampered) {
      for (let i = 0; i < 2; i++)
        expect((await failure(validateJwt(t, source, rules, Date.now(), cache))).reason).toMatch(
          /TokenSignatureInvalid|JwtInvalid/,
        );
    }
    const wrongAudience = await sign(key, claims({ aud: 'api://other' }));
    for (let i = 0; i < 2; i++)
      expect((await failure(validateJwt(wrongAudience, source, rules, Date.now(), cache))).reason).toBe(
        'TokenAudienceNotAllowed',
      );
    expect(cache.hits).toBe(0);
    expect(cache.size).toBe(1);
  });

  it('stays within its size, dropping the least recently used token', async () => {
    const { source } = keySource(keySetOf(key));
    const cache = new VerifiedTokenCache<ValidatedJwt>(3);
    const tokens = await Promise.all([0, 1, 2, 3, 4].map(() => sign(key, claims())));
    for (const t of tokens.slice(0, 3)) await validateJwt(t, source, rules, Date.now(), cache);
    await validateJwt(tokens[0]!, source, rules, Date.now(), cache); // token 0 is now the most recent
    for (const t of tokens.slice(3)) await validateJwt(t, source, rules, Date.now(), cache);
    expect(cache.size).toBe(3);
    const hitsBefore = cache.hits;
    await validateJwt(tokens[0]!, source, rules, Date.now(), cache);
    expect(cache.hits).toBe(hitsBefore + 1);
    await validateJwt(tokens[1]!, source, rules, Date.now(), cache); // evicted: verified again
    expect(cache.hits).toBe(hitsBefore + 1);
    expect(cache.size).toBe(3);
  });

  it('does not cache tokens without exp, and size 0 turns it off', async () => {
    const { source } = keySource(keySetOf(key));
    const cache = new VerifiedTokenCache<ValidatedJwt>(10);
    const noExp = await sign(key, { iss: ISSUER, aud: AUD, sub: 'x' });
    await validateJwt(noExp, source, { ...rules, requireExpirationTime: false }, Date.now(), cache);
    expect(cache.size).toBe(0);
    const off = new VerifiedTokenCache<ValidatedJwt>(0);
    const token = await sign(key, claims());
    await validateJwt(token, source, rules, Date.now(), off);
    await validateJwt(token, source, rules, Date.now(), off);
    expect({ size: off.size, hits: off.hits }).toEqual({ size: 0, hits: 0 });
    expect(() => new VerifiedTokenCache<ValidatedJwt>(-1)).toThrow(/non-negative integer/);
  });
});

describe('verified-token cache (through the gateway, real issuer)', () => {
  const state = tempStateDir();
  let issuer: TestIssuer;
  let upstream: EchoUpstream;
  let gateway: RunningGateway;
  const clock = new OffsetClock();
  const API = randomUUID();

  beforeAll(async () => {
    issuer = await startTestIssuer(state.dir);
    upstream = await startEchoUpstream();
    const policyFile = join(state.dir, 'policy.xml');
    writeFileSync(
      policyFile,
      `<policies><inbound><validate-jwt header-name="Authorization">
  <openid-config url="${issuer.openIdConfigurationUrl}" /><audiences><audience>${API}</audience></audiences>
</validate-jwt></inbound></policies>`,
    );
    gateway = await startGateway({
      stateDir: state.dir,
      policyFile,
      backendUrl: upstream.url,
      trustedCaPem: issuer.caPem,
      accessLog: false,
      clock,
      metadataTimings: { cacheTtlMs: 60_000, minRefreshIntervalMs: 60_000 },
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
    await issuer?.close();
    state.remove();
  });

  const call = (token: string) =>
    httpsCall(`${gateway.url}/orders`, {
      caPem: issuer.caPem,
      headers: { authorization: `Bearer ${token}` },
    });

  it('refuses a token accepted (and cached) a moment ago once it expires', async () => {
    clock.set(0);
    const token = await issuer.sign(accessTokenClaims(issuer, API, { exp: nowS() + 20 }));
    expect((await call(token)).status).toBe(200);
    expect((await call(token)).status).toBe(200);
    clock.set(21_000);
    const res = await call(token);
    expect(res.status).toBe(401);
    expect((res.json() as { message: string }).message).toMatch(
      /^Lifetime validation failed\. The token is expired\./,
    );
  });

  it('refuses a token accepted (and cached) before once its key is removed from the JWKS and the gateway re-fetched it', async () => {
    clock.set(0);
    const oldKey = issuer.keys[0]!;
    const token = await issuer.sign(accessTokenClaims(issuer, API), { key: oldKey });
    expect((await call(token)).status).toBe(200);
    expect((await call(token)).status).toBe(200);
    const newKey = issuer.addKey();
    issuer.removeKey(oldKey.kid);
    const pulls = issuer.counts.jwks;
    clock.set(61_000); // metadata older than its TTL: pulled again on the next request
    const res = await call(token);
    expect(issuer.counts.jwks).toBeGreaterThan(pulls);
    expect(res.status).toBe(401);
    expect((res.json() as { message: string }).message).toMatch(/Unable to match key/);
    expect((await call(await issuer.sign(accessTokenClaims(issuer, API), { key: newKey }))).status).toBe(200);
  });
});
