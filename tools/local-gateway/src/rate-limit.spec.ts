import { RedisServer, startRedisServer } from '@certflow/testing';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RunningGateway, startGateway } from './gateway';
import {
  accessTokenClaims,
  EchoUpstream,
  httpsCall,
  startEchoUpstream,
  startTestIssuer,
  tempStateDir,
  TestIssuer,
} from './test-servers.test-helpers';

const API_APP_ID = randomUUID();

describe('rate-limit-by-key', () => {
  const state = tempStateDir();
  let issuer: TestIssuer;
  let upstream: EchoUpstream;
  let redis: RedisServer;
  const gateways: RunningGateway[] = [];
  let clockMs = Date.now();

  async function gatewayFor(
    inbound: string,
    extra: Partial<Parameters<typeof startGateway>[0]> = {},
  ): Promise<RunningGateway> {
    const policyFile = join(state.dir, `policy-${randomUUID()}.xml`);
    writeFileSync(
      policyFile,
      `<policies>\n<inbound>\n<base />\n${inbound}\n</inbound>\n<backend><base /></backend>\n<outbound><base /></outbound>\n</policies>`,
    );
    const g = await startGateway({
      stateDir: state.dir,
      policyFile,
      namedValues: { 'entra-instance': issuer.url, 'tenant-id': issuer.tenantId, 'api-app-id': API_APP_ID },
      backendUrl: upstream.url,
      trustedCaPem: issuer.caPem,
      accessLog: false,
      clock: { nowMs: () => clockMs, now: () => new Date(clockMs), offsetMs: 0 }, // frozen: moved by hand
      ...extra,
    });
    gateways.push(g);
    return g;
  }
  const call = (g: RunningGateway, headers: Record<string, string> = {}, path = '/orders') =>
    httpsCall(`${g.url}${path}`, { caPem: issuer.caPem, headers });
  const statuses = async (g: RunningGateway, n: number, headers: Record<string, string> = {}) => {
    const result: number[] = [];
    for (let i = 0; i < n; i++) result.push((await call(g, headers)).status);
    return result;
  };

  beforeAll(async () => {
    issuer = await startTestIssuer(state.dir);
    upstream = await startEchoUpstream();
    redis = await startRedisServer();
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await redis?.stop();
    await upstream?.close();
    await issuer?.close();
    state.remove();
  });

  it('allows `calls` requests per counter key, then answers 429 like APIM with Retry-After, without calling the backend', async () => {
    const g = await gatewayFor(
      '<rate-limit-by-key calls="3" renewal-period="60" counter-key="@(context.Request.Headers.GetValueOrDefault(&quot;x-partner&quot;, &quot;anonymous&quot;))" remaining-calls-header-name="X-RateLimit-Remaining" total-calls-header-name="X-RateLimit-Limit" />',
    );
    const partner = `p-${randomUUID()}`;
    const first = await call(g, { 'x-partner': partner });
    expect(first.status).toBe(200);
    expect(first.headers['x-ratelimit-remaining']).toBe('2');
    expect(first.headers['x-ratelimit-limit']).toBe('3');
    expect(await statuses(g, 2, { 'x-partner': partner })).toEqual([200, 200]);
    const before = upstream.received.length;
    const limited = await call(g, { 'x-partner': partner });
    expect(limited.status).toBe(429);
    expect(limited.json()).toEqual({
      statusCode: 429,
      message: `Rate limit is exceeded. Try again in ${limited.headers['retry-after']} seconds.`,
    });
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(Number(limited.headers['retry-after'])).toBeLessThanOrEqual(60);
    expect(limited.headers['x-ratelimit-remaining']).toBe('0');
    expect(upstream.received.length).toBe(before);
    // another key has its own counter
    expect((await call(g, { 'x-partner': `other-${randomUUID()}` })).status).toBe(200);
  });

  it('uses a sliding window, not a fixed one: calls leave the window renewal-period after they were made', async () => {
    const g = await gatewayFor(
      '<rate-limit-by-key calls="2" renewal-period="10" counter-key="sliding" retry-after-header-name="X-Retry-In" />',
    );
    const start = clockMs;
    try {
      expect((await call(g)).status).toBe(200); // t = 0
      clockMs = start + 6_000;
      expect((await call(g)).status).toBe(200); // t = 6
      clockMs = start + 9_000;
      const full = await call(g);
      expect(full.status).toBe(429);
      expect(full.headers['x-retry-in']).toBe('1'); // the t=0 call leaves at t=10
      expect(full.headers['retry-after']).toBeUndefined();
      clockMs = start + 10_500;
      expect((await call(g)).status).toBe(200); // window (0.5, 10.5]: t=6 and now
      clockMs = start + 11_000;
      const again = await call(g);
      expect(again.status).toBe(429);
      expect(again.json()).toEqual({
        statusCode: 429,
        message: 'Rate limit is exceeded. Try again in 5 seconds.',
      }); // t=6 leaves at 16
    } finally {
      clockMs = start + 20_000;
    }
  });

  it('counts only requests whose increment-condition is true, and increment-count per request', async () => {
    const never = await gatewayFor(
      '<rate-limit-by-key calls="1" renewal-period="60" counter-key="never" increment-condition="false" />',
    );
    expect(await statuses(never, 3)).toEqual([200, 200, 200]);

    const key = randomUUID();
    const conditional = await gatewayFor(
      `<rate-limit-by-key calls="2" renewal-period="60" counter-key="${key}" increment-condition="@(context.Request.Headers.GetValueOrDefault(&quot;x-count&quot;, &quot;&quot;) == &quot;yes&quot;)" />`,
    );
    expect(await statuses(conditional, 3, { 'x-count': 'no' })).toEqual([200, 200, 200]);
    expect(await statuses(conditional, 3, { 'x-count': 'yes' })).toEqual([200, 200, 429]);
    expect((await call(conditional, { 'x-count': 'no' })).status).toBe(429); // not counted, but still limited

    const weighted = await gatewayFor(
      `<rate-limit-by-key calls="5" renewal-period="60" counter-key="${randomUUID()}" increment-count="2" remaining-calls-header-name="remaining" />`,
    );
    const r1 = await call(weighted);
    expect(r1.headers.remaining).toBe('3');
    expect(await statuses(weighted, 3)).toEqual([200, 200, 429]);
  });

  it('with an increment-condition on context.Response, counts a request once its status is known', async () => {
    const g = await gatewayFor(`
<rate-limit-by-key calls="2" renewal-period="60" counter-key="@(context.Request.IpAddress + &quot;/response&quot;)" increment-condition="@(context.Response.StatusCode == 200)" />
<validate-jwt header-name="Authorization">
  <openid-config url="{{entra-instance}}/{{tenant-id}}/v2.0/.well-known/openid-configuration" />
  <audiences><audience>{{api-app-id}}</audience></audiences>
</validate-jwt>`);
    const good = { authorization: `Bearer ${await issuer.sign(accessTokenClaims(issuer, API_APP_ID))}` };
    expect(await statuses(g, 4, { authorization: 'Bearer not-a-jwt' })).toEqual([401, 401, 401, 401]); // 401s are not counted
    expect(await statuses(g, 3, good)).toEqual([200, 200, 429]);
  });

  it('keys on a validated token claim and exposes remaining calls as a variable', async () => {
    const g = await gatewayFor(`
<validate-jwt header-name="Authorization" output-token-variable-name="jwt">
  <openid-config url="{{entra-instance}}/{{tenant-id}}/v2.0/.well-known/openid-configuration" />
  <audiences><audience>{{api-app-id}}</audience></audiences>
</validate-jwt>
<rate-limit-by-key calls="1" renewal-period="300" counter-key="@(&quot;azp:&quot; + ((Jwt)context.Variables[&quot;jwt&quot;]).Claims.GetValueOrDefault(&quot;azp&quot;, &quot;&quot;))" remaining-calls-variable-name="remaining" />
<set-header name="X-Remaining" exists-action="override"><value>@("" + context.Variables["remaining"])</value></set-header>`);
    const a = {
      authorization: `Bearer ${await issuer.sign(accessTokenClaims(issuer, API_APP_ID, { azp: randomUUID() }))}`,
    };
    const b = {
      authorization: `Bearer ${await issuer.sign(accessTokenClaims(issuer, API_APP_ID, { azp: randomUUID() }))}`,
    };
    const first = await call(g, a);
    expect(first.status).toBe(200);
    expect((first.json() as { headers: Record<string, string> }).headers['x-remaining']).toBe('0');
    expect((await call(g, a)).status).toBe(429);
    expect((await call(g, b)).status).toBe(200); // another partner, another counter
  });

  it('refuses bad attributes at load time', async () => {
    const bad: Array<[string, RegExp]> = [
      [
        '<rate-limit-by-key calls="1" renewal-period="301" counter-key="k" />',
        /:4: <rate-limit-by-key>: attribute renewal-period must be an integer 1-300/,
      ],
      ['<rate-limit-by-key renewal-period="10" counter-key="k" />', /attribute calls is required/],
      ['<rate-limit-by-key calls="1" renewal-period="10" />', /attribute counter-key is required/],
      [
        '<rate-limit-by-key calls="0" renewal-period="10" counter-key="k" />',
        /attribute calls must be an integer 1-/,
      ],
      [
        '<rate-limit-by-key calls="1" renewal-period="10" counter-key="k" increment-condition="maybe" />',
        /increment-condition must be true, false or a boolean/,
      ],
      [
        '<rate-limit-by-key calls="1" renewal-period="10" counter-key="k" retry-after-header-name="bad header" />',
        /not a valid header name/,
      ],
      [
        '<rate-limit-by-key calls="1" renewal-period="10" counter-key="k" flavour="x" />',
        /unknown or unsupported attribute flavour/,
      ],
    ];
    for (const [xml, why] of bad) await expect(gatewayFor(xml), xml).rejects.toThrow(why);
  });

  describe('with Redis', () => {
    it('two gateway instances sharing one Redis enforce one limit', async () => {
      const policy = `<rate-limit-by-key calls="4" renewal-period="60" counter-key="shared-${randomUUID()}" remaining-calls-header-name="remaining" />`;
      const one = await gatewayFor(policy, { redisUrl: redis.url });
      const two = await gatewayFor(policy, { redisUrl: redis.url });
      const seen: number[] = [];
      for (const g of [one, two, one, two, one, two]) seen.push((await call(g)).status);
      expect(seen).toEqual([200, 200, 200, 200, 429, 429]);
      const limited = await call(one);
      expect(limited.json()).toMatchObject({ statusCode: 429 });
      expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    });

    it('Redis sliding window honours the gateway clock like the memory store', async () => {
      const key = `redis-sliding-${randomUUID()}`;
      const g = await gatewayFor(`<rate-limit-by-key calls="1" renewal-period="10" counter-key="${key}" />`, {
        redisUrl: redis.url,
      });
      const start = clockMs;
      try {
        expect((await call(g)).status).toBe(200);
        clockMs = start + 4_000;
        const limited = await call(g);
        expect(limited.status).toBe(429);
        expect(limited.headers['retry-after']).toBe('6');
        clockMs = start + 10_001;
        expect((await call(g)).status).toBe(200);
      } finally {
        clockMs = start + 20_000;
      }
    });

    it('fails open while Redis is down (documented), and enforces the limit again once it is back', async () => {
      const key = `outage-${randomUUID()}`;
      const g = await gatewayFor(
        `<rate-limit-by-key calls="1" renewal-period="60" counter-key="${key}" remaining-calls-header-name="remaining" />`,
        { redisUrl: redis.url },
      );
      expect((await call(g)).status).toBe(200);
      expect((await call(g)).status).toBe(429);
      await redis.stop();
      const during = await call(g);
      expect(during.status).toBe(200); // fail-open: the request passes
      expect(during.headers.remaining).toBeUndefined(); // no counter, so no remaining-calls header
      await redis.start(); // an empty Redis (no persistence): the counter starts again
      let status = 0;
      let remaining: unknown;
      for (let i = 0; i < 200 && remaining === undefined; i++) {
        const res = await call(g);
        status = res.status;
        remaining = res.headers.remaining;
        if (remaining === undefined) await new Promise((r) => setTimeout(r, 50)); // waiting for ioredis to reconnect
      }
      expect(status).toBe(200);
      expect((await call(g)).status).toBe(429);
    });

    it('refuses to start when Redis cannot be reached at start-up', async () => {
      await expect(
        gatewayFor('<rate-limit-by-key calls="1" renewal-period="1" counter-key="k" />', {
          redisUrl: 'redis://127.0.0.1:1',
        }),
      ).rejects.toThrow(/cannot connect to Redis at redis:\/\/127\.0\.0\.1:1/);
    });
  });
});
