/** The running stack and the partner's credentials, for tests that act as the partner with plain HTTP. */
import type { APIRequestContext } from '@playwright/test';
import type { CertificateAndKey } from '@certflow/certs';
import { partnerCertificate, readStackFile, tokenRequestForm, type StackFile } from '@certflow/stack';

export { partnerCertificate };

export function stack(): StackFile {
  const stateDir = process.env.CERTFLOW_STATE_DIR;
  if (!stateDir)
    throw new Error('CERTFLOW_STATE_DIR is not set: run through playwright.config.ts (global setup)');
  return readStackFile(stateDir);
}

export async function requestToken(
  request: APIRequestContext,
  file: StackFile,
  clientId: string,
  cert: CertificateAndKey,
) {
  return request.post(file.emulator.tokenEndpoint, { form: await tokenRequestForm(file, clientId, cert) });
}

export async function partnerToken(request: APIRequestContext, file: StackFile): Promise<string> {
  const response = await requestToken(request, file, file.partner.appId, partnerCertificate(file));
  if (!response.ok()) throw new Error(`token request failed: ${response.status()} ${await response.text()}`);
  return ((await response.json()) as { access_token: string }).access_token;
}
