/**
 * What a rotation deletes, and the checks that keep a tampered or stale journal from deleting
 * anything in use. The journal only says WHICH step was under way; whether a key pair may go is
 * decided from the certificate directory and the token themselves:
 *
 * - the token is opened with the settings (module-path, pin-source, token) of the key the
 *   current certificate uses; a journal naming another module or token is refused, and no
 *   module path or PIN source is ever taken from the journal;
 * - a key pair is deleted by its CKA_ID (with its label, when one is known), never by label alone;
 * - an interrupted rotation's planned key only if its label and id are what a rotation of the
 *   current key makes (`<current label>-r<time>`, 16 random bytes): not another directory's key
 *   in a shared token;
 * - never one whose CKA_ID (or, for a reference without one, label) is that of a key another
 *   generation or the pending CSR refers to, nor one whose public key is that of a certificate
 *   of another generation (the current one included);
 * - the old key of a finished rotation only if it is the key of the old generation (its
 *   partner.key.p11 names it and its public key is that generation's certificate's) and that
 *   generation is not current;
 * - only a key bound to this certificate directory: its CKA_SUBJECT, fixed when certflow made it
 *   and not modifiable, is this directory's binding (key-in-token.ts). Everything above comes
 *   from files whoever can write the directory can forge; the binding cannot be. A key bound to
 *   another directory (another partner's, or this one's before it was moved) is refused; a key
 *   with no binding (not made by this version of certflow) is left in the token, and said so.
 *
 * A refusal throws a RotationError and deletes nothing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCertificate, type ParsedCertificate } from '@certflow/certs';
import { formatPkcs11Uri, parsePkcs11Uri, type Pkcs11Uri } from '@certflow/pkcs11';
import { PENDING_KEY_REFERENCE_FILE } from './certificate-import';
import type { CertificateStore } from './certificate-store';
import { CERTIFICATE_FILE, GenerationLayout, KEY_REFERENCE_FILE } from './generations';
import { directoryBinding, directoryReplaceableBy, inToken, openToken } from './key-in-token';
import type { RotationJournal } from './rotation-journal';
import {
  isNextKeyLabelOf,
  nextKeyLabel,
  PLANNED_ID_BYTES,
  RotationError,
  type PlannedTokenKey,
} from './rotation-keys';

type Env = Readonly<Record<string, string | undefined>>;

/** A generation's certificate and key reference, read as files (no token is opened). */
export interface GenerationFiles {
  certificate: ParsedCertificate;
  keyUri?: Pkcs11Uri;
}

function readFiles(directory: string): GenerationFiles {
  const reference = join(directory, KEY_REFERENCE_FILE);
  return {
    certificate: parseCertificate(readFileSync(join(directory, CERTIFICATE_FILE))),
    ...(existsSync(reference) ? { keyUri: parsePkcs11Uri(readFileSync(reference, 'utf8').trim()) } : {}),
  };
}

export function generationFiles(certDir: string, gen: string): GenerationFiles {
  return readFiles(new GenerationLayout(certDir).path(gen));
}

/** The certificate in use and its key reference (the fixed links into `current`, or the first layout's files). */
export function currentFiles(certDir: string): GenerationFiles {
  return readFiles(certDir);
}

/** The generation whose certificate has this SHA-256 thumbprint (read from its files). */
export function generationWith(certDir: string, sha256: string): string | undefined {
  const prefix = `-${sha256.slice(0, 12).toLowerCase()}`;
  return new GenerationLayout(certDir)
    .list()
    .filter((gen) => gen.includes(prefix))
    .find((gen) => generationFiles(certDir, gen).certificate.thumbprints.sha256Hex === sha256);
}

const spki = (certificate: ParsedCertificate | { publicKey: ParsedCertificate['publicKey'] }) =>
  certificate.publicKey.export({ type: 'spki', format: 'der' });

const TOKEN_ATTRIBUTES = ['token', 'manufacturer', 'serial', 'model', 'slotId'] as const;

function tokenOnly(uri: Pkcs11Uri): Pkcs11Uri {
  return { ...uri, object: undefined, id: undefined, type: undefined };
}

/** Does `other` name the token (and module) `current` is in? Attributes `other` omits match any. */
function sameToken(current: Pkcs11Uri, other: Pkcs11Uri, env: Env): string | undefined {
  const module = (uri: Pkcs11Uri) => uri.modulePath ?? env['PARTNER_PKCS11_MODULE'];
  if (other.modulePath !== undefined && other.modulePath !== module(current))
    return `it names the module ${other.modulePath}, the current key's is ${module(current) ?? '(not set)'}`;
  for (const attribute of TOKEN_ATTRIBUTES)
    if (other[attribute] !== undefined && other[attribute] !== current[attribute])
      return `it names ${attribute}=${String(other[attribute])}, the current key's token ${String(current[attribute] ?? '(unnamed)')}`;
  return undefined;
}

/** Why a key without a binding is left in the token. */
const UNBOUND =
  "it carries no certflow binding (CKA_SUBJECT), so nothing shows it is this directory's; if no certificate uses it, delete it by hand";

export interface KeyDeletion {
  /** The key pair to delete (its id, label, token). */
  key: Pkcs11Uri;
  /** What it is, for messages: "the unfinished key …", "the old key …". */
  what: string;
  /** The generation the key belongs to, whose certificate it must match; it is not protected. */
  of?: { generation: string; certificate: ParsedCertificate };
}

/**
 * Deletes the key pair `deletion.key` names from the token the current certificate's key is in,
 * after the checks above: 'deleted', 'absent' when the token holds no such key, or 'unbound'
 * (left in the token) when the key carries no binding. Throws RotationError (nothing deleted)
 * when a check fails.
 */
export function deleteUnusedKeyPair(
  certDir: string,
  deletion: KeyDeletion,
  env: Env,
): 'deleted' | 'absent' | 'unbound' {
  const refuse = (reason: string): never => {
    throw new RotationError(
      `refusing to delete ${deletion.what} from the token: ${reason}; nothing was deleted. rotation.json does not agree with ${certDir}: see the certificate in use with "cert show", then delete rotation.json and remove keys no certificate uses from the token by hand`,
    );
  };
  const replaceable = directoryReplaceableBy(certDir);
  if (replaceable)
    refuse(
      `${replaceable}, so another directory could stand at this path; certflow deletes keys only from a certificate directory no other user can replace (chmod go-w, or move it under a directory of your own)`,
    );
  const current = currentFiles(certDir);
  if (current.keyUri === undefined)
    return refuse('the current certificate has its key in a file, not in a token');
  const mismatch = sameToken(current.keyUri, deletion.key, env);
  if (mismatch) refuse(`it is not in the current key's token (${mismatch})`);

  const layout = new GenerationLayout(certDir);
  const others = layout
    .list()
    .filter((gen) => gen !== deletion.of?.generation)
    .map((gen) => ({ name: `generation ${gen}`, ...generationFiles(certDir, gen) }));
  if (layout.current() === undefined) others.push({ name: 'the certificate in use', ...current });
  const pendingPath = join(certDir, PENDING_KEY_REFERENCE_FILE);
  const pending = existsSync(pendingPath)
    ? [{ name: 'the pending CSR', keyUri: parsePkcs11Uri(readFileSync(pendingPath, 'utf8').trim()) }]
    : [];

  const { token } = openToken(formatPkcs11Uri(tokenOnly(current.keyUri)), env);
  try {
    let id = deletion.key.id;
    const label = deletion.key.object;
    if (id === undefined) {
      // A reference by label alone: the CKA_ID of the one private key with that label.
      if (label === undefined || !inToken(undefined, () => token.hasKey({ object: label }))) return 'absent';
      id = inToken(undefined, () => token.keyAttributes({ object: label })).id;
      if (id.length === 0)
        refuse(`the key labelled ${label} has no CKA_ID, and a key is never deleted by label alone`);
    }
    const selector: Pkcs11Uri = { id, ...(label !== undefined ? { object: label } : {}) };
    for (const other of [...others, ...pending]) {
      const ref = other.keyUri;
      if (
        ref &&
        (ref.id !== undefined ? ref.id.equals(id!) : ref.object !== undefined && ref.object === label)
      )
        refuse(`${other.name} uses the key with id ${id!.toString('hex')}`);
    }
    const binding = directoryBinding(certDir);
    if (inToken(undefined, () => token.hasKey(selector))) {
      const bound = inToken(undefined, () => token.keyAttributes(selector)).binding;
      if (bound === null) return 'unbound';
      if (bound !== binding)
        throw new RotationError(
          `refusing to delete ${deletion.what} from the token: it belongs to another certificate directory (its binding is ${bound}, this directory's ${binding}: the SHA-256 of its real path); nothing was deleted. If you moved or renamed ${certDir} yourself since the key was made, the key is its own: delete it from the token by hand and run "cert rotate" again to finish. Otherwise rotation.json does not agree with ${certDir}: see the certificate in use with "cert show", then delete rotation.json`,
        );
      const publicKey = spki(inToken(undefined, () => token.signer(selector)));
      if (deletion.of && !publicKey.equals(spki(deletion.of.certificate)))
        refuse(`it is not the key of the certificate of generation ${deletion.of.generation}`);
      for (const other of others)
        if (publicKey.equals(spki(other.certificate)))
          refuse(`it is the key of ${other.name} (certificate ${other.certificate.thumbprints.sha1Hex})`);
    }
    return inToken(undefined, () => token.deleteKeyPair(selector, { binding })) ? 'deleted' : 'absent';
  } finally {
    token.close();
  }
}

/** An interrupted rotation's next key, planned (journaled) and perhaps generated: deleted after the checks. */
export function deletePlannedKey(
  certDir: string,
  planned: PlannedTokenKey,
  env: Env,
  log: (message: string) => void,
): void {
  const what = `the unfinished key ${planned.label} (id ${planned.id})`;
  const currentLabel = currentFiles(certDir).keyUri?.object;
  if (!isNextKeyLabelOf(planned.label, currentLabel) || planned.id.length !== PLANNED_ID_BYTES * 2)
    throw new RotationError(
      `refusing to delete ${what} from the token: a rotation of the key ${currentLabel ?? '(unlabelled)'} labels its next key ${nextKeyLabel(currentLabel, new Date(0)).replace(/\d{8}T\d{6}Z$/, '<time>')} with a ${PLANNED_ID_BYTES}-byte id; nothing was deleted. rotation.json does not agree with ${certDir}: see the certificate in use with "cert show", then delete rotation.json and remove keys no certificate uses from the token by hand`,
    );
  const key = {
    ...parsePkcs11Uri(planned.tokenUri),
    object: planned.label,
    id: Buffer.from(planned.id, 'hex'),
  };
  const outcome = deleteUnusedKeyPair(certDir, { key, what }, env);
  if (outcome === 'deleted') log(`deleted ${what} from the token`);
  if (outcome === 'unbound') log(`left ${what} in the token: ${UNBOUND}`);
}

/**
 * The last step: the old generation's key pair (when in a token, after the checks of
 * deleteUnusedKeyPair), then the old generation itself. Refuses (nothing deleted) when the
 * generation the journal names is the one in use or holds another certificate. Returns what
 * the result's message must say when the old key was left in the token (no binding).
 */
export function removeOldGeneration(
  store: CertificateStore,
  old: RotationJournal['old'],
  env: Env,
  log: (message: string) => void,
): string | undefined {
  const { directory } = store;
  const generation = old.generation ?? generationWith(directory, old.sha256);
  if (generation === undefined || !store.generations().includes(generation)) return undefined;
  const files = generationFiles(directory, generation);
  const inUse = generation === store.currentGeneration();
  if (inUse || files.certificate.thumbprints.sha256Hex !== old.sha256)
    throw new RotationError(
      `the rotation journal names ${generation} as the old generation, but ${inUse ? 'it is the one in use' : `it holds the certificate ${files.certificate.thumbprints.sha256Hex}, not ${old.sha256}`}; nothing was deleted: see the certificate in use with "cert show", then delete rotation.json and remove what no certificate uses by hand`,
    );
  let left: string | undefined;
  if (files.keyUri) {
    const of = { generation, certificate: files.certificate };
    const what = `the old key (generation ${generation})`;
    const outcome = deleteUnusedKeyPair(directory, { key: files.keyUri, what, of }, env);
    if (outcome === 'deleted') log('deleted the old key pair from the token');
    if (outcome === 'unbound') {
      left = `${what}, ${formatPkcs11Uri({ ...files.keyUri, pinSource: undefined, modulePath: undefined })}, was left in the token: ${UNBOUND}`;
      log(left);
    }
  }
  store.removeGeneration(generation);
  return left;
}
