import { describe, expect, it } from 'vitest';
import { isNextKeyLabelOf, nextKeyLabel } from './rotation-keys';

describe('nextKeyLabel', () => {
  const at = new Date('2026-11-30T03:02:33.500Z');

  it('is the label base and the time of the rotation', () => {
    expect(nextKeyLabel('partner', at)).toBe('partner-r20261130T030233Z');
    expect(nextKeyLabel('partner-r20260101T000000Z', at)).toBe('partner-r20261130T030233Z');
    expect(nextKeyLabel(undefined, at)).toBe('certflow-partner-r20261130T030233Z');
  });

  it("is never the current key's label: a key made in the same second (or a clock behind it) gets the next second", () => {
    expect(nextKeyLabel('partner-r20261130T030233Z', at)).toBe('partner-r20261130T030234Z');
    expect(nextKeyLabel('partner-r20261231T235959Z', at)).toBe('partner-r20270101T000000Z');
    expect(isNextKeyLabelOf(nextKeyLabel('partner-r20261130T030233Z', at), 'partner-r20261130T030233Z')).toBe(
      true,
    );
  });
});
