/**
 * Graph beta's sign-ins query options over HTTPS: `$` optional in beta, an option given twice and
 * an unknown `$select` name refused; the filter parser's dates and its cost on hostile filters.
 */
import { describe, expect, it } from 'vitest';
import { https } from './emulator.test-helpers';
import { parseFilter } from './graph-beta-sign-ins';
import { GraphError } from './graph-errors';
import { expectGraphError, useGraphFixture } from './graph.test-helpers';

const { f, adminToken } = useGraphFixture();
const SP_FILTER = "signInEventTypes/any(t: t eq 'servicePrincipal')";

function signIns(query: string) {
  return https(f.emulator, `${f.emulator.url}/graph/beta/auditLogs/signIns${query}`, {
    headers: { authorization: `Bearer ${adminToken()}` },
  });
}

/** Three entries of a new app id, recorded straight into the log. */
function seed(): string {
  const appId = crypto.randomUUID();
  for (const errorCode of [0, 700027, 0])
    f.emulator.signInLog.record({
      appId,
      ipAddress: '127.0.0.1',
      clientCredentialType: 'certificate',
      errorCode,
    });
  return appId;
}

const ids = (res: { json(): Record<string, unknown> }) =>
  (res.json() as { value: { id: string }[] }).value.map((e) => e.id);

describe('query options', () => {
  it('in beta the $ is optional: filter=, top=, select= and skiptoken= are the $ options', async () => {
    const appId = seed();
    const filter = encodeURIComponent(`${SP_FILTER} and appId eq '${appId}' and status/errorCode eq 0`);
    const withDollar = await signIns(`?$filter=${filter}&$top=1`);
    const without = await signIns(`?filter=${filter}&top=1&select=appId`);
    expect(without.status, without.text).toBe(200);
    expect(ids(without)).toEqual(ids(withDollar));
    expect(ids(without)).toHaveLength(1);
    const body = without.json() as { value: Record<string, unknown>[]; '@odata.nextLink': string };
    expect(Object.keys(body.value[0]!).sort()).toEqual(['appId', 'id']);
    // The next page, though this page's skip token was asked for without $.
    const next = await https(f.emulator, body['@odata.nextLink'], {
      headers: { authorization: `Bearer ${adminToken()}` },
    });
    expect(next.status, next.text).toBe(200);
    expect(ids(next)).toHaveLength(1);
    expect(ids(next)).not.toEqual(ids(without));
  });

  it.each([
    [
      '$filter twice',
      `?$filter=${encodeURIComponent(SP_FILTER)}&$filter=${encodeURIComponent("appId eq 'x'")}`,
    ],
    [
      'filter and $filter',
      `?filter=${encodeURIComponent(SP_FILTER)}&$filter=${encodeURIComponent("appId eq 'x'")}`,
    ],
    ['$top twice', '?$top=1&$top=2'],
  ])('%s: 400 naming the option, never one of them ignored', async (_name, query) => {
    const res = await signIns(query);
    expectGraphError(res, 400, 'BadRequest');
    expect((res.json().error as { message: string }).message).toMatch(
      /^Query option '\$(filter|top)' was specified more than once/,
    );
  });

  it('$select naming no property of signIn: 400 naming it, for a list and for one entry', async () => {
    const appId = seed();
    const one = ids(
      await signIns(`?$top=1&$filter=${encodeURIComponent(`${SP_FILTER} and appId eq '${appId}'`)}`),
    )[0];
    for (const query of [
      `?$select=appId,secretText&$filter=${encodeURIComponent(SP_FILTER)}`,
      `/${one}?$select=secretText`,
    ]) {
      const res = await signIns(query);
      expectGraphError(res, 400, 'BadRequest');
      expect((res.json().error as { message: string }).message).toContain(
        "Could not find a property named 'secretText' on type 'microsoft.graph.signIn'",
      );
    }
    expect((await signIns(`/${one}?$select=appId,status`)).json()).toMatchObject({ id: one, appId });
  });

  it('a parameter that is no query option (no $, unknown name) is ignored, as Graph does', async () => {
    const res = await signIns(`?$filter=${encodeURIComponent(SP_FILTER)}&$top=1&api-version=2`);
    expect(res.status, res.text).toBe(200);
  });
});

describe('the $filter parser', () => {
  const refusal = (filter: string) => {
    try {
      parseFilter(filter, true);
    } catch (err) {
      expect(err).toBeInstanceOf(GraphError);
      return (err as GraphError).message;
    }
    return 'accepted';
  };

  it('createdDateTime: a date or time that does not exist is refused, never rolled over', () => {
    for (const at of [
      '2026-02-30T00:00:00Z',
      '2025-02-29T00:00:00Z',
      '2026-04-31T10:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-01-01T24:00:00Z',
      '2026-01-01T23:60:00Z',
      '2026-01-01T23:59:60Z',
      '2026-01-01T00:00:00+15:00',
    ])
      expect(refusal(`createdDateTime ge ${at}`), at).toContain(at);
    for (const at of ['2024-02-29T00:00:00Z', '2026-12-31T23:59:59.1234567Z', '2026-01-01T00:00:00-14:00'])
      expect(refusal(`createdDateTime ge ${at}`), at).toBe('accepted');
  });

  it('splits hostile filters in linear time, and refuses parentheses nested over 32 levels', () => {
    const started = performance.now();
    // A run of spaces not followed by `and`: the old split re-scanned it from every space.
    expect(refusal(`${SP_FILTER}${' '.repeat(100_000)}x`)).toContain('invalid query filter clause');
    expect(refusal(`${SP_FILTER}${" and appId eq 'a'".repeat(20_000)}`)).toBe('accepted');
    expect(performance.now() - started).toBeLessThan(1000);
    const clause = 'status/errorCode eq 0';
    expect(refusal(`${'('.repeat(32)}${clause}${')'.repeat(32)}`)).toBe('accepted');
    expect(refusal(`${'('.repeat(33)}${clause}${')'.repeat(33)}`)).toContain('invalid query filter clause');
  });
});
