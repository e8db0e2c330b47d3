/** The sign-in log on its own: its bound, its order, its Graph shape, and the filter parser's refusals. */
import { describe, expect, it } from 'vitest';
import { parseFilter } from './graph-beta-sign-ins';
import { GraphError } from './graph-errors';
import {
  clientAddress,
  SIGN_IN_LOG_CAPACITY,
  SIGN_IN_PROPERTIES,
  SIGN_IN_TEXT_PROPERTIES,
  SIGN_IN_TEXT_LIMIT,
  SignInLog,
  signInView,
  type SignInAttempt,
} from './sign-in-log';

const TENANT = '11111111-2222-3333-4444-555555555555';
const attempt = (n: number, over: Partial<SignInAttempt> = {}): SignInAttempt => ({
  appId: `00000000-0000-0000-0000-${String(n).padStart(12, '0')}`,
  ipAddress: '127.0.0.1',
  clientCredentialType: 'certificate',
  errorCode: 0,
  ...over,
});

describe('SignInLog', () => {
  it('keeps the newest `capacity` entries, newest first, and counts the ones it dropped', () => {
    const seen: boolean[] = [];
    const log = new SignInLog({
      capacity: 3,
      now: () => new Date('2026-01-01T00:00:00Z'),
      onRecord: (_, dropped) => seen.push(dropped),
    });
    expect([...log.newestFirst()]).toEqual([]);
    for (let n = 1; n <= 5; n++) log.record(attempt(n));
    expect(log.size).toBe(3);
    expect(log.dropped).toBe(2);
    expect(seen).toEqual([false, false, false, true, true]);
    const appIds = [...log.newestFirst()].map((r) => r.attempt.appId!.slice(-1));
    expect(appIds).toEqual(['5', '4', '3']);
    const seqs = [...log.newestFirst()].map((r) => r.seq);
    expect(seqs).toEqual([5, 4, 3]);
  });

  it('stamps each record with its own GUID and the time given (the request start) or the clock', () => {
    const log = new SignInLog({ capacity: 10, now: () => new Date('2030-05-06T07:08:09.000Z') });
    const a = log.record(attempt(1));
    const b = log.record(attempt(2), new Date('2031-01-01T00:00:00.000Z'));
    expect(signInView(a, TENANT).createdDateTime).toBe('2030-05-06T07:08:09.000Z');
    expect(signInView(b, TENANT).createdDateTime).toBe('2031-01-01T00:00:00.000Z');
    expect(a.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.id).not.toBe(b.id);
    expect(Object.isFrozen(a.attempt)).toBe(true);
  });

  it('refuses a capacity that is not a positive integer', () => {
    for (const capacity of [0, -1, 1.5, Number.NaN])
      expect(() => new SignInLog({ capacity, now: () => new Date() })).toThrow(/capacity/);
    expect(SIGN_IN_LOG_CAPACITY).toBe(10_000);
  });

  it("shows a record as Graph beta's signIn: resourceId is the resource's app id", () => {
    const log = new SignInLog({ capacity: 2, now: () => new Date('2026-01-01T00:00:00Z') });
    const view = signInView(
      log.record(
        attempt(7, {
          appDisplayName: 'partner',
          servicePrincipalId: 'sp-client',
          resourceId: 'sp-resource',
          resourceAppId: 'app-resource',
          resourceDisplayName: 'orders API',
          thumbprint: 'ABCDEF',
          keyId: 'key-1',
          errorCode: 700027,
          failureReason: 'Client assertion contains an invalid signature.',
          correlationId: 'corr',
          requestId: 'req',
          processingTimeMs: 3,
        }),
      ),
      TENANT,
    );
    expect(view).toMatchObject({
      appDisplayName: 'partner',
      servicePrincipalId: 'sp-client',
      servicePrincipalName: 'partner',
      resourceId: 'app-resource',
      resourceServicePrincipalId: 'sp-resource',
      resourceDisplayName: 'orders API',
      resourceTenantId: TENANT,
      clientCredentialType: 'certificate',
      servicePrincipalCredentialThumbprint: 'ABCDEF',
      servicePrincipalCredentialKeyId: 'key-1',
      signInEventTypes: ['servicePrincipal'],
      isInteractive: false,
      correlationId: 'corr',
      originalRequestId: 'req',
      processingTimeInMilliseconds: 3,
      status: {
        errorCode: 700027,
        failureReason: 'Client assertion contains an invalid signature.',
        additionalDetails: null,
      },
    });
  });

  it('names a minted test token in status.additionalDetails, and success has no failureReason', () => {
    const log = new SignInLog({ capacity: 2, now: () => new Date() });
    const minted = signInView(log.record(attempt(1, { minted: true, clientCredentialType: 'none' })), TENANT);
    expect(minted.status).toEqual({
      errorCode: 0,
      failureReason: null,
      additionalDetails: expect.stringContaining('/admin/testTokens'),
    });
  });

  it('keeps at most SIGN_IN_TEXT_LIMIT characters of every text field: an entry stays under 4 KB', () => {
    const log = new SignInLog({ capacity: 1, now: () => new Date() });
    const huge = '<b>'.repeat(20_000);
    const hostile = attempt(1, {
      appDisplayName: huge,
      resourceDisplayName: huge,
      thumbprint: huge,
      failureReason: huge,
      additionalDetails: huge,
      ipAddress: huge,
      errorCode: 700027,
    });
    const view = signInView(log.record(hostile), TENANT);
    expect(Buffer.byteLength(JSON.stringify(view))).toBeLessThanOrEqual(4096);
    const status = view.status as Record<string, string>;
    expect(status.failureReason).toHaveLength(SIGN_IN_TEXT_LIMIT.reason);
    expect(status.failureReason!.endsWith('…')).toBe(true);
    expect(view.appDisplayName).toHaveLength(SIGN_IN_TEXT_LIMIT.field);
    expect(view.servicePrincipalCredentialThumbprint).toHaveLength(SIGN_IN_TEXT_LIMIT.field);
    const short = signInView(log.record(attempt(2, { appDisplayName: 'orders' })), TENANT);
    expect(short.appDisplayName).toBe('orders');
  });

  it("the filter's record accessors give what the Graph view shows", () => {
    const log = new SignInLog({ capacity: 1, now: () => new Date() });
    const record = log.record(
      attempt(7, {
        appDisplayName: 'orders partner',
        servicePrincipalId: 'sp-1',
        resourceId: 'resource-sp',
        resourceAppId: 'resource-app',
        resourceDisplayName: 'orders API',
        correlationId: 'corr',
      }),
    );
    const view = signInView(record, TENANT);
    expect(SIGN_IN_PROPERTIES).toEqual(Object.keys(view));
    for (const [name, read] of Object.entries(SIGN_IN_TEXT_PROPERTIES))
      expect(read(record), name).toBe(view[name]);
  });

  it('takes the socket address, IPv4 without its IPv6 mapping', () => {
    expect(clientAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(clientAddress('::1')).toBe('::1');
    expect(clientAddress(undefined)).toBe('');
  });
});

describe('the signIns $filter parser', () => {
  const refused = (filter: string, beta = true) => {
    try {
      parseFilter(filter, beta);
    } catch (err) {
      expect(err).toBeInstanceOf(GraphError);
      return (err as GraphError).message;
    }
    throw new Error(`accepted: ${filter}`);
  };

  it('accepts and-joined clauses, in parentheses too', () => {
    const { predicates, eventTypes } = parseFilter(
      "(createdDateTime ge 2024-01-13T14:13:32Z and createdDateTime le 2024-01-14T17:43:26Z) and signInEventTypes/any(t: t eq 'servicePrincipal') and status/errorCode ne 0 and appId eq 'A' and startsWith(appDisplayName, 'it''s')",
      true,
    );
    expect(predicates).toHaveLength(6);
    expect(eventTypes).toBe(true);
  });

  it('refuses every clause it does not support, naming it, instead of ignoring it', () => {
    expect(refused("appId eq 'x' or appId eq 'y'")).toContain("appId eq 'x' or appId eq 'y'");
    expect(refused("userId eq 'x'")).toContain("userId eq 'x'");
    expect(refused("appId eq 'x' and not (status/errorCode eq 0)")).toContain('not (status/errorCode eq 0)');
    expect(refused('createdDateTime ge yesterday')).toContain('createdDateTime ge yesterday');
    expect(refused('status/errorCode gt 0')).toContain('status/errorCode gt 0');
    expect(refused("signInEventTypes/any(t: x eq 'servicePrincipal')")).toContain('signInEventTypes');
    expect(refused("appId eq 'x' and")).toContain("appId eq 'x' and");
    expect(refused("(appId eq 'x'")).toContain("(appId eq 'x'");
    expect(refused("appId eq 'unterminated")).toContain('unterminated');
  });

  it("v1.0's signIn has no signInEventTypes", () => {
    expect(refused("signInEventTypes/any(t: t eq 'servicePrincipal')", false)).toContain(
      "Could not find a property named 'signInEventTypes'",
    );
  });
});
