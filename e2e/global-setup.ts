/**
 * Starts the whole stack in a fresh state directory and hands its location to the tests.
 * The development CA is trusted by the test workers through NODE_EXTRA_CA_CERTS, which they
 * read when they start (after this).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchStackProcess } from '@certflow/stack';

export default async function globalSetup(): Promise<() => Promise<void>> {
  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-e2e-'));
  const stack = await launchStackProcess(stateDir);
  process.env.CERTFLOW_STATE_DIR = stateDir;
  process.env.NODE_EXTRA_CA_CERTS = stack.file.caCertificatePath;
  return async () => {
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  };
}
