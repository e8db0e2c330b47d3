/**
 * A second credential for the stack's first partner, whose key is inside a SoftHSM2 token: a
 * fresh token, `partner-worker cert create --key-store pkcs11:…` in a temporary PARTNER_CERT_DIR
 * (the built CLI, as a partner runs it), and the `.cer` registered on the partner's application
 * by the API owner (the emulator's Graph as admin). The key pairs left in the token are counted
 * with pkcs11js directly, independently of the code under test.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pkcs11js from 'pkcs11js';
import { GraphClient, readEmulatorInfo } from '@certflow/entra-emulator';
import {
  appEntryPoint,
  PARTNER_KEY_ID_FILE,
  runJsonCommand,
  stackPartner,
  type StackFile,
} from '@certflow/stack';
import { createSoftHsmToken, type SoftHsmToken } from '@certflow/testing';
import { partnerWorkerEnvironment } from './partner-facade';

export interface HsmPartner {
  token: SoftHsmToken;
  certDir: string;
  /** What the partner worker's environment changes for this credential: PARTNER_CERT_DIR, the token's module, PIN and SOFTHSM2_CONF. */
  env: Record<string, string>;
  /** The keyId Graph gave the certificate made in the token. */
  keyId: string;
  /** The CKA_ID (hex) of each private and each public key in the token. */
  keyPairs(): { privateKeys: string[]; publicKeys: string[] };
  /** Takes this directory's certificates off the application, deletes the directory and the token. */
  remove(): Promise<void>;
}

export async function createHsmPartner(file: StackFile, label: string): Promise<HsmPartner> {
  const partner = stackPartner(file);
  const token = createSoftHsmToken({ label });
  const certDir = mkdtempSync(join(tmpdir(), 'certflow-load-hsm-'));
  const env = { PARTNER_CERT_DIR: certDir, ...token.env };
  const graph = await GraphClient.connect(readEmulatorInfo(file.stateDir));
  const keyIds = new Set<string>();
  const remove = async (): Promise<void> => {
    try {
      try {
        keyIds.add(readFileSync(join(certDir, PARTNER_KEY_ID_FILE), 'utf8').trim());
      } catch {
        // no keyId in the directory (yet): only the one registered below
      }
      await graph.removeCertificates(partner.objectId, keyIds);
    } finally {
      graph.close();
      rmSync(certDir, { recursive: true, force: true });
      token.remove();
    }
  };
  try {
    const worker = appEntryPoint('partner-worker');
    const keyStore = `pkcs11:token=${label};object=${label}-1`;
    const created = await runJsonCommand(
      worker,
      ['cert', 'create', '--key-store', keyStore, '--json'],
      partnerWorkerEnvironment(file, env),
    );
    const cerPath = created.events.find((e) => e.event === 'certificate')?.cerPath;
    if (created.code !== 0 || typeof cerPath !== 'string')
      throw new Error(`cert create --key-store ${keyStore} failed:\n${created.output}`);
    const registered = await graph.addCertificate(
      partner.objectId,
      readFileSync(cerPath),
      `${label} (key in SoftHSM2)`,
    );
    keyIds.add(registered.keyId);
    return {
      token,
      certDir,
      env,
      keyId: registered.keyId,
      keyPairs: () => keyPairsIn(token),
      remove,
    };
  } catch (err) {
    await remove();
    throw err;
  }
}

/** The CKA_ID (hex) of every private and public key in the token, through a session of its own. */
function keyPairsIn(token: SoftHsmToken): { privateKeys: string[]; publicKeys: string[] } {
  const previousConf = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = token.conf;
  const p = new pkcs11js.PKCS11();
  p.load(token.modulePath);
  p.C_Initialize();
  try {
    const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === token.label);
    if (!slot) throw new Error(`no SoftHSM2 token labelled ${token.label} in ${token.conf}`);
    const session = p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
    try {
      p.C_Login(session, pkcs11js.CKU_USER, token.pin);
      const ids = (objectClass: number): string[] => {
        p.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: objectClass }]);
        try {
          return p
            .C_FindObjects(session, 1_000)
            .map((h) => p.C_GetAttributeValue(session, h, [{ type: pkcs11js.CKA_ID }])[0]!.value as Buffer)
            .map((id) => id.toString('hex'))
            .sort();
        } finally {
          p.C_FindObjectsFinal(session);
        }
      };
      return { privateKeys: ids(pkcs11js.CKO_PRIVATE_KEY), publicKeys: ids(pkcs11js.CKO_PUBLIC_KEY) };
    } finally {
      p.C_CloseSession(session);
    }
  } finally {
    p.C_Finalize();
    p.close();
    if (previousConf === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = previousConf;
  }
}
