import { describe, expect, it } from 'vitest';
import { counterSum } from './partner-facade';

const METRICS = `# HELP entra_emulator_tokens_issued_total Access tokens issued
# TYPE entra_emulator_tokens_issued_total counter
entra_emulator_tokens_issued_total{client_id="p",resource="api",credential="certificate",token_version="2"} 3
entra_emulator_tokens_issued_total{client_id="p",resource="api",credential="secret",token_version="2"} 2
entra_emulator_tokens_issued_total{client_id="p",resource="graph",credential="certificate",token_version="2"} 7
entra_emulator_tokens_issued_total{client_id="other",resource="api",credential="certificate",token_version="2"} 11
entra_emulator_tokens_issued_total_other{client_id="p",resource="api"} 100
partner_certificate_switches_total 1
partner_certificate_switches_total_other 9
`;

describe('counterSum', () => {
  it('adds the samples whose labels include every wanted label, and only of the named metric', () => {
    const metric = 'entra_emulator_tokens_issued_total';
    expect(counterSum(METRICS, metric, { client_id: 'p', resource: 'api' })).toBe(5);
    expect(counterSum(METRICS, metric, { client_id: 'p' })).toBe(12);
    expect(counterSum(METRICS, metric, { client_id: 'p', resource: 'nothing' })).toBe(0);
    expect(counterSum(METRICS, metric, { client_id: '"p"' })).toBe(0);
    // An unlabelled sample counts only when no label is asked for.
    expect(counterSum(METRICS, 'partner_certificate_switches_total')).toBe(1);
    expect(counterSum(METRICS, 'partner_certificate_switches_total', { client_id: 'p' })).toBe(0);
  });
});
