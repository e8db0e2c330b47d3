import { describe, expect, it } from 'vitest';
import { apimNamedValues, formatChanges } from './plan-format';
import type { ReconcileResult } from './reconcile-types';

const result = (patch: Partial<ReconcileResult>): ReconcileResult => ({
  applied: false,
  changes: [],
  warnings: [],
  apis: [],
  partners: [],
  removed: [],
  ...patch,
});

describe('formatChanges', () => {
  it('prints control and bidirectional characters as escapes, wherever they come from', () => {
    const plan = result({
      changes: [
        { kind: 'create', subject: 'role R of api orders', detail: '"R": erase\u001b[2K\u001b[1Aline' },
        { kind: 'update', subject: 'partner x', detail: 'displayName "a\u202eb" → "c\u0085d\u2066"' },
      ],
      warnings: ['an application "\u0007bell\r" is in the way'],
    });
    const text = formatChanges(plan, 'certflow.topology.json');
    // eslint-disable-next-line no-control-regex -- no control character may be left
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
    expect(text.split('\n').slice(1)).toEqual([
      '  + create role R of api orders: "R": erase\\u001b[2K\\u001b[1Aline',
      '  ~ update partner x: displayName "a\\u202eb" → "c\\u0085d\\u2066"',
      'warning: an application "\\u0007bell\\u000d" is in the way',
    ]);
  });

  it('writes one line per change with its sign, then the warnings', () => {
    const plan = result({
      changes: [
        { kind: 'create', subject: 'api orders', detail: 'roles Orders.Read' },
        { kind: 'update', subject: 'role Orders.Read of api orders', detail: 'description "a" → "b"' },
        { kind: 'adopt', subject: 'partner contoso', detail: 'takes over "contoso-partner"' },
        { kind: 'grant', subject: 'partner contoso', detail: 'Orders.Read on api orders' },
        { kind: 'upload', subject: 'partner contoso', detail: 'certificate CN=contoso' },
        { kind: 'revoke', subject: 'partner fabrikam', detail: 'Orders.Write on api orders' },
        { kind: 'delete', subject: 'partner old', detail: 'no longer in the topology' },
      ],
      warnings: ['partner gone: left in place (prune removes it)'],
    });
    expect(formatChanges(plan, 'certflow.topology.json')).toBe(
      [
        'Plan: 7 changes to bring the directory to certflow.topology.json (nothing written):',
        '  + create api orders: roles Orders.Read',
        '  ~ update role Orders.Read of api orders: description "a" → "b"',
        '  ~ adopt partner contoso: takes over "contoso-partner"',
        '  + grant partner contoso: Orders.Read on api orders',
        '  + upload partner contoso: certificate CN=contoso',
        '  - revoke partner fabrikam: Orders.Write on api orders',
        '  - delete partner old: no longer in the topology',
        'warning: partner gone: left in place (prune removes it)',
      ].join('\n'),
    );
    expect(
      formatChanges(
        result({ applied: true, changes: [{ kind: 'grant', subject: 'partner a', detail: 'R on api b' }] }),
        't.json',
      ),
    ).toBe('Applied 1 change to bring the directory to t.json:\n  + grant partner a: R on api b');
  });

  it('says when nothing changes, and still shows the warnings', () => {
    expect(formatChanges(result({}), 'certflow.topology.json')).toBe(
      'No changes: the directory matches certflow.topology.json.',
    );
    expect(formatChanges(result({ warnings: ['w'] }), 't.json')).toBe(
      'No changes: the directory matches t.json.\nwarning: w',
    );
  });
});

describe('apimNamedValues', () => {
  it("gives the four named values of the API's policy", () => {
    const api = {
      name: 'orders',
      objectId: 'o',
      appId: '11111111-2222-3333-4444-555555555555',
      servicePrincipalId: 's',
      identifierUri: 'api://certflow-orders',
      roleIds: {},
    };
    expect(apimNamedValues(api, 'https://login.microsoftonline.com/', 'tenant-guid')).toEqual({
      'entra-instance': 'https://login.microsoftonline.com',
      'tenant-id': 'tenant-guid',
      'api-app-id': '11111111-2222-3333-4444-555555555555',
      'api-app-id-uri': 'api://certflow-orders',
    });
  });
});
