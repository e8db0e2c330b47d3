/**
 * Steps 5 and 6 with nothing but HTTP, for suites that act as a partner without MSAL
 * (e2e, load): a client assertion as MSAL builds it with `thumbprintSha256` (PS256 with
 * `x5t#S256`), exchanged at the token endpoint for the served API's scope.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { certificateClientAssertion } from '@certflow/entra-emulator';
import type { CertificateAndKey } from '@certflow/certs';
import { servedApi, stackPartner, type StackFile, type StackPartner } from './stack-file';

/** The partner's key pair from its certificate directory. */
export function partnerCertificate(partner: StackPartner): CertificateAndKey {
  return {
    certificatePem: readFileSync(join(partner.certificateDirectory, 'partner.crt.pem'), 'utf8'),
    privateKeyPem: readFileSync(join(partner.certificateDirectory, 'partner.key.pem'), 'utf8'),
  };
}

export async function tokenRequestForm(
  file: StackFile,
  clientId: string,
  cert: CertificateAndKey,
): Promise<Record<string, string>> {
  return {
    grant_type: 'client_credentials',
    client_id: clientId,
    scope: servedApi(file).scope,
    client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
    client_assertion: await certificateClientAssertion(file.emulator.tokenEndpoint, clientId, cert),
  };
}

/** Answer of the token endpoint to `partner`'s client-assertion request signed with `cert` (its own by default). */
export async function partnerTokenResponse(
  file: StackFile,
  partner: StackPartner,
  cert: CertificateAndKey = partnerCertificate(partner),
): Promise<{ status: number; text: string }> {
  const body = new URLSearchParams(await tokenRequestForm(file, partner.appId, cert)).toString();
  const ca = readFileSync(file.caCertificatePath);
  return new Promise((resolve, reject) => {
    const req = request(
      file.emulator.tokenEndpoint,
      { method: 'POST', ca, headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** `partner`'s access token for the served API (default: the stack's first partner), fetched over HTTPS trusting the development CA. */
export async function requestPartnerToken(
  file: StackFile,
  partner: StackPartner = stackPartner(file),
): Promise<string> {
  const { status, text } = await partnerTokenResponse(file, partner);
  if (status !== 200)
    throw new Error(`token request of partner ${partner.name} failed with HTTP ${status}: ${text}`);
  const token = (JSON.parse(text) as { access_token?: unknown }).access_token;
  if (typeof token !== 'string' || token === '') throw new Error('token response has no access_token');
  return token;
}
