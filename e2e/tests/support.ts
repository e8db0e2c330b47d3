/** The running stack and its partners' credentials, for tests that act as a partner with plain HTTP. */
import type { APIRequestContext } from '@playwright/test';
import type { CertificateAndKey } from '@certflow/certs';
import {
  partnerCertificate,
  readStackFile,
  servedApi,
  stackPartner,
  tokenRequestForm,
  type StackFile,
  type StackPartner,
} from '@certflow/stack';

export { partnerCertificate, servedApi, stackPartner };

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

/** `partner`'s access token for the served API (default: the topology's first partner). */
export async function partnerToken(
  request: APIRequestContext,
  file: StackFile,
  partner: StackPartner = stackPartner(file),
): Promise<string> {
  const response = await requestToken(request, file, partner.appId, partnerCertificate(partner));
  if (!response.ok()) throw new Error(`token request failed: ${response.status()} ${await response.text()}`);
  return ((await response.json()) as { access_token: string }).access_token;
}
