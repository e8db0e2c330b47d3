/**
 * The whole flow with the partner's key inside a PKCS#11 token (SoftHSM2): the built partner
 * worker makes the key in a fresh token and the certificate through it, the API owner registers
 * the `.cer` on the partner's application, and `partner-worker call` gets a token from the
 * emulator with an assertion signed by the token and a 200 from the API through the gateway.
 * The registration is removed afterwards, so the other tests see the partner as the stack made it.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { parseCertificate } from '@certflow/certs';
import { GraphClient, readEmulatorInfo } from '@certflow/entra-emulator';
import { parsePkcs11Uri, Pkcs11Token } from '@certflow/pkcs11';
import { appEntryPoint, runJsonCommand, stackPartnerEnvironment } from '@certflow/stack';
import { createSoftHsmToken } from '@certflow/testing';
import { servedApi, stack, stackPartner } from './support';

const LABEL = 'certflow-e2e';

/** Every file under `dir` (symlinks followed where they lead somewhere). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (!existsSync(path)) return [];
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

test.describe('the partner key in a PKCS#11 token (SoftHSM2)', () => {
  test('a key made in the token signs the assertion that opens the API through the gateway', async () => {
    test.setTimeout(90_000);
    const file = stack();
    const partner = stackPartner(file);
    const token = createSoftHsmToken({ label: LABEL });
    const certDir = mkdtempSync(join(tmpdir(), 'certflow-e2e-hsm-'));
    const env = {
      ...process.env,
      ...stackPartnerEnvironment(file, partner.name),
      PARTNER_CERT_DIR: certDir,
      ...token.env,
    };
    const worker = appEntryPoint('partner-worker');
    const graph = await GraphClient.connect(readEmulatorInfo(file.stateDir));
    let keyId: string | undefined;
    try {
      // The partner makes its key pair in the token and a certificate signed through it.
      const created = await runJsonCommand(
        worker,
        ['cert', 'create', '--key-store', `pkcs11:token=${LABEL};object=${LABEL}`, '--json'],
        env,
      );
      expect(created.code, created.output).toBe(0);
      const shown = await runJsonCommand(worker, ['cert', 'show', '--json'], env);
      expect(shown.code, shown.output).toBe(0);
      const summary = shown.events.find((e) => e.event === 'certificate') as {
        keyUri: string;
        cerPath: string;
        keyProtection: { store: string; attributes: Record<string, unknown> };
        thumbprints: { sha256Base64Url: string };
      };
      expect(summary.keyProtection.store).toBe('pkcs11');
      expect(summary.keyProtection.attributes).toMatchObject({
        sensitive: true,
        extractable: false,
        alwaysSensitive: true,
        neverExtractable: true,
        canSign: true,
      });
      // No private key anywhere in the certificate directory: only the key's URI.
      for (const path of filesUnder(certDir))
        expect(readFileSync(path, 'latin1'), path).not.toMatch(/PRIVATE KEY/);

      // The API owner registers the .cer on the partner's application.
      const cer = readFileSync(summary.cerPath);
      keyId = (await graph.addCertificate(partner.objectId, cer, 'e2e key in SoftHSM2')).keyId;

      const called = await runJsonCommand(worker, ['call', '/orders', '--json'], env);
      expect(called.code, called.output).toBe(0);
      const assertion = called.events.find((e) => e.event === 'assertion') as {
        header: Record<string, unknown>;
        claims: Record<string, unknown>;
      };
      expect(assertion.header).toMatchObject({
        alg: 'PS256',
        'x5t#S256': parseCertificate(cer).thumbprints.sha256Base64Url,
      });
      expect(assertion.header['x5t#S256']).toBe(summary.thumbprints.sha256Base64Url);
      expect(assertion.claims).toMatchObject({ iss: partner.appId, sub: partner.appId });
      const issued = called.events.find((e) => e.event === 'token') as {
        source: string;
        claims: Record<string, unknown>;
      };
      expect(issued.source).toBe('network');
      expect(issued.claims).toMatchObject({ azp: partner.appId, tid: file.tenantId });
      const response = called.events.find((e) => e.event === 'response') as {
        status: number;
        body: { caller: Record<string, unknown> };
      };
      expect(response.status).toBe(200);
      expect(response.body.caller).toMatchObject({
        clientAppId: partner.appId,
        clientAuthentication: 'certificate',
        roles: partner.roles[servedApi(file).name],
      });

      // The key object read straight from the token agrees, and it is the certificate's key.
      process.env.SOFTHSM2_CONF = token.conf;
      const keyUri = parsePkcs11Uri(summary.keyUri);
      const session = Pkcs11Token.open(keyUri, { modulePath: token.modulePath, pin: token.pin });
      try {
        const attributes = session.keyAttributes(keyUri);
        expect(attributes).toMatchObject({
          label: LABEL,
          sensitive: true,
          extractable: false,
          alwaysSensitive: true,
          neverExtractable: true,
          canSign: true,
          modulusBits: 2048,
        });
        expect({ ...attributes, id: attributes.id.toString('hex') }).toEqual(
          summary.keyProtection.attributes,
        );
        const spki = (k: { export(o: { type: 'spki'; format: 'der' }): Buffer }) =>
          k.export({ type: 'spki', format: 'der' }).toString('base64');
        expect(spki(session.signer(keyUri).publicKey)).toBe(spki(parseCertificate(cer).publicKey));
      } finally {
        session.close();
      }
      // The API owner takes the registration off again: the partner is as the stack made it.
      await graph.removeCertificates(partner.objectId, [keyId]);
      const app = await graph.getApplication(partner.objectId, { select: ['id', 'keyCredentials'] });
      expect(app.keyCredentials.map((k) => k.keyId)).not.toContain(keyId);
      keyId = undefined;
    } finally {
      if (keyId) await graph.removeCertificates(partner.objectId, [keyId]);
      graph.close();
      rmSync(certDir, { recursive: true, force: true });
      token.remove();
    }
  });
});
