/**
 * Which applications of the directory hold a partner key directory's certificates: a key
 * directory is removed only when none does. Compared by what Graph keeps of a certificate: the
 * certificate itself (`key`, whose public key may be any key of the directory, e.g. one of an
 * earlier generation in `generations/`) or its SHA-1 thumbprint (`customKeyIdentifier`) — never
 * by tags or names, which anyone who can edit an application can change. A key kept in a
 * PKCS#11 token has no file here; its certificate's thumbprint still counts.
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseCertificate } from '@certflow/certs';
import { customKeyIdentifierThumbprints, quote, type GraphRest } from '@certflow/topology';

export interface DirectoryKeys {
  /** SHA-1 thumbprints (upper-case hex) of the certificates in the directory. */
  thumbprints: Set<string>;
  /** Every public key in the directory (its certificates' and its private keys'), as base64 SPKI DER. */
  publicKeys: Set<string>;
  /** Certificate and key files that could not be read (a key with a passphrase, a damaged file), relative to the directory. */
  unreadable: string[];
}

const spki = (key: KeyObject): string => key.export({ type: 'spki', format: 'der' }).toString('base64');

/** The certificates (`*.cer`, `*.crt.pem`) and private keys (`*.key.pem`) under `dir`; symbolic links are not followed. */
export function directoryKeys(dir: string): DirectoryKeys {
  const keys: DirectoryKeys = { thumbprints: new Set(), publicKeys: new Set(), unreadable: [] };
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const certificate = /\.(cer|crt\.pem)$/.test(entry.name);
    if (!certificate && !entry.name.endsWith('.key.pem')) continue;
    try {
      const content = readFileSync(path);
      if (certificate) {
        const parsed = parseCertificate(content);
        keys.thumbprints.add(parsed.thumbprints.sha1Hex);
        keys.publicKeys.add(spki(parsed.publicKey));
      } else keys.publicKeys.add(spki(createPublicKey(createPrivateKey(content))));
    } catch {
      keys.unreadable.push(relative(dir, path));
    }
  }
  return keys;
}

interface KeyCredential {
  key?: string | null;
  customKeyIdentifier?: string | null;
}

export interface KeyHolder {
  id: string;
  displayName: string;
  keyCredentials?: KeyCredential[];
}

/**
 * Every application with its key credentials, certificates included: a list gives the
 * thumbprints only, so each application that has key credentials is read on its own (Graph
 * returns `key` only for `$select=keyCredentials` on a single application).
 */
export async function keyHolders(graph: GraphRest): Promise<KeyHolder[]> {
  const apps = await graph.list<KeyHolder>('/applications?$select=id,displayName,keyCredentials');
  return Promise.all(
    apps.map((app) =>
      (app.keyCredentials ?? []).length === 0
        ? app
        : graph.get<KeyHolder>(
            `/applications/${encodeURIComponent(app.id)}?$select=id,displayName,keyCredentials`,
          ),
    ),
  );
}

/** Whether the credential is one of the directory's certificates, or a certificate for one of its keys. */
function holds(credential: KeyCredential, keys: DirectoryKeys): boolean {
  if (credential.key) {
    try {
      const registered = parseCertificate(credential.key);
      if (keys.publicKeys.has(spki(registered.publicKey))) return true;
      if (keys.thumbprints.has(registered.thumbprints.sha1Hex)) return true;
    } catch {
      // Not a certificate this side can read: the identifier may still name one of the directory's.
    }
  }
  return customKeyIdentifierThumbprints(credential.customKeyIdentifier).some((t) => keys.thumbprints.has(t));
}

/** The applications holding any of the directory's certificates or keys, described for a person. */
export function holdersOf(keys: DirectoryKeys, apps: KeyHolder[]): string[] {
  return apps
    .filter((app) => (app.keyCredentials ?? []).some((c) => holds(c, keys)))
    .map((app) => `${quote(app.displayName)} (object id ${app.id})`);
}
