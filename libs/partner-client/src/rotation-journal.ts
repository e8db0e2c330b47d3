/**
 * The rotation journal, `<certDir>/rotation.json` (mode 0600, replaced atomically), present only
 * while a rotation is under way. Each step is recorded BEFORE the step it guards, so a rotation
 * killed at any moment can be finished or undone by the next `cert rotate`:
 *
 *   started           the old generation, its thumbprints and keyId (when known)
 *   key-planned       a key in a token: the new key's label and CKA_ID, before it is generated
 *   certificate-made  the new certificate's thumbprints, before its generation is written
 *   written           the new generation's name, before addKey is sent
 *   refused           addKey was refused (401/403): the new generation waits for the API owner
 *   added             the keyId Graph gave the new certificate (or that it is unknown)
 *   switched          `current` names the new generation (with the time: the grace period)
 *   removed           removeKey of the old certificate is done (or could not be sent: its keyId
 *                     unknown); the old key pair and generation go next
 *
 * The journal holds no secret: thumbprints, keyIds, generation names, a key's label and id.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '@certflow/certs';
import { isGuid } from '@certflow/claims';

export const ROTATION_JOURNAL_FILE = 'rotation.json';
export const ROTATION_JOURNAL_VERSION = 1;

export const ROTATION_STATES = [
  'started',
  'key-planned',
  'certificate-made',
  'written',
  'refused',
  'added',
  'switched',
  'removed',
] as const;
export type RotationState = (typeof ROTATION_STATES)[number];

export interface CertificateRecord {
  /** SHA-256 and SHA-1 thumbprints, upper-case hex. */
  sha256: string;
  sha1: string;
}

export interface RotationJournal {
  version: typeof ROTATION_JOURNAL_VERSION;
  state: RotationState;
  startedAt: string;
  old: CertificateRecord & {
    /** undefined: a directory of the first layout, adopted as a generation by the switch. */
    generation?: string;
    keyId?: string;
    /** Its keyId was not known, so removeKey was not sent: it stays registered (its key is deleted). */
    keyIdUnknown?: boolean;
  };
  next?: Partial<CertificateRecord> & {
    /** A key in a token: where it is made, planned before it is generated. */
    tokenKey?: { tokenUri: string; label: string; id: string };
    generation?: string;
    keyId?: string;
    /** addKey's answer was lost and the application's keyCredentials could not be read. */
    keyIdUnknown?: boolean;
  };
  /** When `current` was switched to the new generation (the grace period counts from it). */
  switchedAt?: string;
  /** addKey's refusal: HTTP status and Graph's message. */
  refused?: { status: number; reason?: string };
}

export class RotationJournalError extends Error {
  override readonly name = 'RotationJournalError';
  readonly code = 'ERR_ROTATION_JOURNAL';
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(message);
  }
}

const HEX = (bytes: number) => new RegExp(`^[0-9A-F]{${bytes * 2}}$`);
const GENERATION = /^\d{8}T\d{6}Z-[0-9a-f]{12}(?:-\d{1,3})?$/;

function recovery(path: string): string {
  return (
    `nothing was changed. To recover: run "cert show" to see the certificate in use (it still works); ` +
    `delete ${path}, then remove by hand what the interrupted rotation may have left: a generation in ` +
    `generations/ that is not current, a key in the token that no certificate uses, and (Entra admin ` +
    `center, Certificates & secrets) a certificate registered for it; then run "cert rotate" again`
  );
}

/** Checks a parsed journal; throws naming the first field that is wrong. */
function validate(value: unknown): RotationJournal {
  const fail = (what: string): never => {
    throw new TypeError(what);
  };
  const object = (v: unknown, where: string): Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : fail(`${where} is not an object`);
  const optional = (
    o: Record<string, unknown>,
    key: string,
    check: (v: unknown) => boolean,
    what: string,
    where: string,
  ) => {
    if (o[key] !== undefined && !check(o[key])) fail(`${where}.${key} is not ${what}`);
  };
  const thumbprints = (o: Record<string, unknown>, where: string, required: boolean) => {
    for (const [key, bytes] of [
      ['sha256', 32],
      ['sha1', 20],
    ] as const) {
      if (o[key] === undefined && !required) continue;
      if (typeof o[key] !== 'string' || !HEX(bytes).test(o[key])) fail(`${where}.${key} is not a thumbprint`);
    }
  };
  const isGeneration = (v: unknown) => typeof v === 'string' && GENERATION.test(v);
  const isTime = (v: unknown) => typeof v === 'string' && Number.isFinite(Date.parse(v));
  const isText = (v: unknown) => typeof v === 'string' && v.length > 0 && v.length < 2048;

  const j = object(value, 'the journal');
  if (j.version !== ROTATION_JOURNAL_VERSION)
    fail(`version is ${JSON.stringify(j.version)}, not ${ROTATION_JOURNAL_VERSION}`);
  if (!ROTATION_STATES.includes(j.state as RotationState))
    fail(`state ${JSON.stringify(j.state)} is not a rotation step`);
  if (!isTime(j.startedAt)) fail('startedAt is not a time');
  const old = object(j.old, 'old');
  thumbprints(old, 'old', true);
  optional(old, 'generation', isGeneration, 'a generation name', 'old');
  optional(old, 'keyId', isGuid, 'a GUID', 'old');
  optional(old, 'keyIdUnknown', (v) => v === true, 'true', 'old');
  const state = j.state as RotationState;
  const index = ROTATION_STATES.indexOf(state);
  if (j.next === undefined) {
    if (index > 0) fail(`state ${state} needs next`);
  } else {
    const next = object(j.next, 'next');
    thumbprints(next, 'next', index >= ROTATION_STATES.indexOf('certificate-made'));
    optional(next, 'generation', isGeneration, 'a generation name', 'next');
    optional(next, 'keyId', isGuid, 'a GUID', 'next');
    optional(next, 'keyIdUnknown', (v) => v === true, 'true', 'next');
    if (next.tokenKey !== undefined) {
      const key = object(next.tokenKey, 'next.tokenKey');
      if (!isText(key.tokenUri) || !(key.tokenUri as string).startsWith('pkcs11:'))
        fail('next.tokenKey.tokenUri is not a PKCS#11 URI');
      if (!isText(key.label)) fail('next.tokenKey.label is not a label');
      if (typeof key.id !== 'string' || !/^(?:[0-9a-f]{2}){1,64}$/.test(key.id))
        fail('next.tokenKey.id is not hex');
    }
    if (index >= ROTATION_STATES.indexOf('written') && next.generation === undefined)
      fail(`state ${state} needs next.generation`);
    if (index >= ROTATION_STATES.indexOf('added') && next.keyId === undefined && next.keyIdUnknown !== true)
      fail(`state ${state} needs next.keyId (or next.keyIdUnknown)`);
    if (state === 'key-planned' && next.tokenKey === undefined) fail('state key-planned needs next.tokenKey');
  }
  optional(j, 'switchedAt', isTime, 'a time', 'the journal');
  if (index >= ROTATION_STATES.indexOf('switched') && j.switchedAt === undefined)
    fail(`state ${state} needs switchedAt`);
  if (j.refused !== undefined) {
    const refused = object(j.refused, 'refused');
    if (!Number.isInteger(refused.status)) fail('refused.status is not an HTTP status');
    optional(refused, 'reason', (v) => typeof v === 'string', 'text', 'refused');
  }
  if (state === 'refused' && j.refused === undefined) fail('state refused needs refused');
  return j as unknown as RotationJournal;
}

export function journalPath(directory: string): string {
  return join(directory, ROTATION_JOURNAL_FILE);
}

/** The journal of an unfinished rotation, checked; undefined when none is under way. */
export function readJournal(directory: string): RotationJournal | undefined {
  const path = journalPath(directory);
  if (!existsSync(path)) return undefined;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new RotationJournalError(
      `cannot read the rotation journal ${path} (${(err as Error).message}); ${recovery(path)}`,
      path,
    );
  }
  try {
    return validate(JSON.parse(text));
  } catch (err) {
    const why = err instanceof SyntaxError ? 'it is not JSON' : (err as Error).message;
    throw new RotationJournalError(
      `the rotation journal ${path} is damaged (${why}); ${recovery(path)}`,
      path,
    );
  }
}

/** Records a step (atomic: the previous journal or this one, never half of it). */
export function writeJournal(directory: string, journal: RotationJournal): void {
  validate(journal);
  writeFileAtomic(journalPath(directory), `${JSON.stringify(journal, null, 2)}\n`, 0o600);
}

export function removeJournal(directory: string): void {
  rmSync(journalPath(directory), { force: true });
}
