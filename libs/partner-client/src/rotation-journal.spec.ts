/** The rotation journal: written atomically with mode 0600, read back checked; a damaged one is a clear error that changes nothing. */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '@certflow/testing';
import {
  journalPath,
  readJournal,
  removeJournal,
  RotationJournalError,
  writeJournal,
  type RotationJournal,
} from './rotation-journal';

const dir = tempDir('rotation-journal-');
afterAll(() => dir.remove());

const SHA256 = 'A'.repeat(64);
const SHA1 = 'B'.repeat(40);
const journal: RotationJournal = {
  version: 1,
  state: 'switched',
  startedAt: '2026-11-30T01:00:00.000Z',
  old: {
    sha256: SHA256,
    sha1: SHA1,
    generation: '20261130T010000Z-aaaaaaaaaaaa',
    keyId: '11111111-1111-1111-1111-111111111111',
  },
  next: {
    sha256: 'C'.repeat(64),
    sha1: 'D'.repeat(40),
    generation: '20261130T011500Z-cccccccccccc',
    keyId: '22222222-2222-2222-2222-222222222222',
    tokenKey: { tokenUri: 'pkcs11:token=partner', label: 'partner-r20261130T011500Z', id: '0a0b' },
  },
  switchedAt: '2026-11-30T01:16:00.000Z',
};

function damaged(text: string): RotationJournalError {
  writeFileSync(journalPath(dir.path), text);
  try {
    readJournal(dir.path);
  } catch (err) {
    expect(readFileSync(journalPath(dir.path), 'utf8')).toBe(text); // unchanged
    if (err instanceof RotationJournalError) return err;
    throw err;
  }
  throw new Error('expected a RotationJournalError');
}

describe('rotation journal', () => {
  it('round-trips, with mode 0600; none is undefined', () => {
    expect(readJournal(dir.path)).toBeUndefined();
    writeJournal(dir.path, journal);
    expect(statSync(journalPath(dir.path)).mode & 0o777).toBe(0o600);
    expect(readJournal(dir.path)).toEqual(journal);
    removeJournal(dir.path);
    expect(readJournal(dir.path)).toBeUndefined();
  });

  it('a damaged journal is an error naming what is wrong and how to recover', () => {
    expect(damaged('{"version":1,').message).toMatch(
      /rotation\.json is damaged \(it is not JSON\); nothing was changed\. To recover: .*delete .*rotation\.json/,
    );
    expect(damaged(JSON.stringify({ ...journal, version: 2 })).message).toMatch(/version is 2, not 1/);
    expect(damaged(JSON.stringify({ ...journal, state: 'halfway' })).message).toMatch(
      /state "halfway" is not a rotation step/,
    );
    expect(damaged(JSON.stringify({ ...journal, switchedAt: undefined })).message).toMatch(
      /state switched needs switchedAt/,
    );
    expect(damaged(JSON.stringify({ ...journal, old: { ...journal.old, keyId: 'x' } })).message).toMatch(
      /old\.keyId is not a GUID/,
    );
    expect(
      damaged(
        JSON.stringify({ ...journal, next: { ...journal.next, generation: ['..', '..', 'etc'].join('/') } }),
      ).message,
    ).toMatch(/next\.generation is not a generation name/);
    expect(
      damaged(
        JSON.stringify({
          ...journal,
          state: 'added',
          next: { generation: journal.next!.generation, sha256: SHA256, sha1: SHA1 },
        }),
      ).message,
    ).toMatch(/state added needs next\.keyId/);
    removeJournal(dir.path);
  });

  it('refuses to write a journal that would not read back', () => {
    expect(() => writeJournal(dir.path, { ...journal, state: 'written', next: {} })).toThrow(
      /next\.sha256 is not a thumbprint/,
    );
    expect(readJournal(dir.path)).toBeUndefined();
  });
});
