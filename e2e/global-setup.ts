/**
 * Starts the whole stack in a fresh state directory and hands its location to the tests.
 * The test workers start after this, so what is set in process.env here reaches them:
 * NODE_EXTRA_CA_CERTS makes Node (the API request fixture) trust the development CA, and
 * CERTFLOW_EMULATOR_SPKI pins the emulator's TLS key for Chromium.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { launchStackProcess } from '@certflow/stack';

/** The SHA-256 of the server's SubjectPublicKeyInfo, after Node has verified its chain to `ca`. */
function verifiedSpkiHash(url: string, ca: Buffer): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), ca, servername: hostname }, () => {
      const spki = socket.getPeerX509Certificate()!.publicKey.export({ type: 'spki', format: 'der' });
      socket.end();
      resolve(createHash('sha256').update(spki).digest('base64'));
    });
    socket.once('error', reject);
  });
}

export default async function globalSetup(): Promise<() => Promise<void>> {
  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-e2e-'));
  const stack = await launchStackProcess(stateDir);
  process.env.CERTFLOW_STATE_DIR = stateDir;
  process.env.NODE_EXTRA_CA_CERTS = stack.file.caCertificatePath;
  process.env.CERTFLOW_EMULATOR_SPKI = await verifiedSpkiHash(
    stack.file.emulator.url,
    readFileSync(stack.file.caCertificatePath),
  );
  return async () => {
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  };
}
