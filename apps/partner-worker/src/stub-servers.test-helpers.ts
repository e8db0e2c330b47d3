/**
 * What the CLI specs that need no emulator share: a stub authority that accepts the partner
 * certificate made here (real assertion checks), an HTTPS API answering with `handler`, both
 * trusting a development CA in `cwd`/state, and the environment that points the CLI at them.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { DevelopmentCa } from '@certflow/certs';
import { CertificateStore } from '@certflow/partner-client';
import {
  startHttpsServer,
  startStubAuthority,
  type Handler,
  type StubAuthority,
  type TestServer,
} from '@certflow/testing';

export interface PartnerStubs {
  authority: StubAuthority;
  api: TestServer;
  env: Record<string, string>;
}

export async function startPartnerStubs(
  cwd: string,
  options: { certDir: string; commonName: string; handler: Handler },
): Promise<PartnerStubs> {
  const ca = DevelopmentCa.loadOrCreate(join(cwd, 'state'));
  const tenantId = randomUUID();
  const clientId = randomUUID();
  const credential = new CertificateStore(join(cwd, options.certDir)).create({
    commonName: options.commonName,
  });
  const authority = await startStubAuthority(ca, { tenantId, clientId, registered: credential.certificate });
  const api = await startHttpsServer(ca, options.handler);
  return {
    authority,
    api,
    env: {
      ENTRA_INSTANCE: authority.url,
      PARTNER_TENANT_ID: tenantId,
      PARTNER_CLIENT_ID: clientId,
      PARTNER_SCOPE: 'api://certflow-orders/.default',
      PARTNER_API_BASE_URL: api.url,
      PARTNER_CERT_DIR: options.certDir,
      PARTNER_CA_FILE: ca.certificatePath,
    },
  };
}
