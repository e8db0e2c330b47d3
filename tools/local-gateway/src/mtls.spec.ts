import { CertificateAndKey, DevelopmentCa } from '@certflow/certs';
import { createHash, randomUUID, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClientCertificateOptions } from './client-certificate';
import { RunningGateway, startGateway } from './gateway';
import {
  EchoedRequest,
  EchoUpstream,
  startEchoUpstream,
  tempStateDir,
  TestResponse,
} from './test-servers.test-helpers';
import { OffsetClock } from '@certflow/clock';

/** An HTTPS call presenting `client` (certificate + key) when given. */
function mtlsCall(
  url: string,
  caPem: string,
  client?: CertificateAndKey,
  headers: OutgoingHttpHeaders = {},
): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        ca: caPem,
        agent: false,
        headers,
        ...(client ? { cert: client.certificatePem, key: client.privateKeyPem } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const sha1 = (pem: string) => createHash('sha1').update(new X509Certificate(pem).raw).digest('hex');

describe('mTLS (Application Gateway) and validate-client-certificate', () => {
  const state = tempStateDir();
  const otherState = tempStateDir();
  let ca: DevelopmentCa;
  let partner: CertificateAndKey;
  let stranger: CertificateAndKey;
  let upstream: EchoUpstream;
  const gateways: RunningGateway[] = [];
  const clock = new OffsetClock();

  async function gatewayFor(
    inbound: string,
    clientCertificates: ClientCertificateOptions | undefined,
  ): Promise<RunningGateway> {
    const policyFile = join(state.dir, `policy-${randomUUID()}.xml`);
    writeFileSync(policyFile, `<policies>\n<inbound>\n<base />\n${inbound}\n</inbound>\n</policies>`);
    const g = await startGateway({
      stateDir: state.dir,
      policyFile,
      backendUrl: upstream.url,
      accessLog: false,
      clock,
      ...(clientCertificates ? { clientCertificates } : {}),
    });
    gateways.push(g);
    return g;
  }
  const call = (
    g: RunningGateway,
    client?: CertificateAndKey,
    headers: OutgoingHttpHeaders = {},
    path = '/orders',
  ) => mtlsCall(`${g.url}${path}`, ca.certificatePem, client, headers);
  const echoed = (res: TestResponse) => (res.json() as EchoedRequest).headers;

  beforeAll(async () => {
    ca = DevelopmentCa.loadOrCreate(state.dir);
    partner = ca.issueClientCertificate('partner-contoso');
    stranger = DevelopmentCa.loadOrCreate(otherState.dir).issueClientCertificate('partner-contoso');
    upstream = await startEchoUpstream();
  });

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    await upstream?.close();
    state.remove();
    otherState.remove();
  });

  describe('strict mode', () => {
    let gateway: RunningGateway;
    beforeAll(async () => {
      gateway = await gatewayFor('', { trustedCaPem: ca.certificatePem });
    });

    it('answers 400 before any policy without a client certificate, and with one from an untrusted CA', async () => {
      const before = upstream.received.length;
      const none = await call(gateway);
      expect(none.status).toBe(400);
      expect(none.json()).toEqual({ statusCode: 400, message: 'No required SSL certificate was sent.' });
      const untrusted = await call(gateway, stranger);
      expect(untrusted.status).toBe(400);
      expect(untrusted.json()).toEqual({ statusCode: 400, message: 'The SSL certificate error.' });
      expect(upstream.received.length).toBe(before);
    });

    it('forwards a trusted certificate as Application Gateway rewrite headers, replacing spoofed ones', async () => {
      const res = await call(gateway, partner, {
        'x-client-cert': 'forged',
        'x-client-cert-verification': 'SUCCESS',
        'x-client-cert-subject': 'CN=admin',
        'x-client-cert-fingerprint': '00',
        'x-appgw-trace-id': 'spoofed',
        'x-original-url': '/admin',
      });
      expect(res.status).toBe(200);
      const h = echoed(res);
      expect(h['x-client-cert-verification']).toBe('SUCCESS');
      expect(h['x-client-cert-fingerprint']).toBe(sha1(partner.certificatePem));
      expect(h['x-client-cert-subject']).toMatch(/^CN=partner-contoso(,|$)/);
      expect(h['x-client-cert-issuer']).toBe(
        new X509Certificate(ca.certificatePem).subject.split('\n').reverse().join(','),
      );
      expect(h['x-client-cert-serial']).toBe(
        new X509Certificate(partner.certificatePem).serialNumber.toUpperCase(),
      );
      expect(new X509Certificate(decodeURIComponent(String(h['x-client-cert']))).fingerprint256).toBe(
        new X509Certificate(partner.certificatePem).fingerprint256,
      );
      expect(h['x-appgw-trace-id']).toMatch(/^[0-9a-f]{32}$/);
      expect(h['x-original-url']).toBe('/orders');
      expect(h['x-forwarded-proto']).toBe('https');
    });
  });

  it('without mTLS, a client cannot inject the certificate headers', async () => {
    const g = await gatewayFor('', undefined);
    const h = echoed(
      await call(g, undefined, {
        'x-client-cert-verification': 'SUCCESS',
        'x-client-cert': 'forged',
        'x-appgw-trace-id': 'spoofed',
      }),
    );
    expect(h['x-client-cert-verification']).toBeUndefined();
    expect(h['x-client-cert']).toBeUndefined();
    expect(h['x-appgw-trace-id']).not.toBe('spoofed');
  });

  describe('passthrough mode + validate-client-certificate', () => {
    const passthrough = (): ClientCertificateOptions => ({
      trustedCaPem: ca.certificatePem,
      mode: 'passthrough',
    });

    it('forwards NONE / FAILED:<reason> and lets the policy decide', async () => {
      const open = await gatewayFor('', passthrough());
      expect(echoed(await call(open))['x-client-cert-verification']).toBe('NONE');
      expect(echoed(await call(open, stranger))['x-client-cert-verification']).toMatch(/^FAILED:[A-Z_]+/);

      const strictPolicy = await gatewayFor(
        '<validate-client-certificate validate-revocation="false" />',
        passthrough(),
      );
      const none = await call(strictPolicy);
      expect(none.status).toBe(401);
      expect(none.json()).toEqual({
        statusCode: 401,
        message: 'Invalid client certificate: no client certificate was presented.',
      });
      expect((await call(strictPolicy, stranger)).json()).toEqual({
        statusCode: 401,
        message: 'Invalid client certificate: the certificate chain is not trusted.',
      });
      expect((await call(strictPolicy, partner)).status).toBe(200);

      const noTrust = await gatewayFor(
        '<validate-client-certificate validate-revocation="false" validate-trust="false" />',
        passthrough(),
      );
      expect((await call(noTrust, stranger)).status).toBe(200);
      const ignoring = await gatewayFor(
        '<validate-client-certificate validate-revocation="false" ignore-error="true" />',
        passthrough(),
      );
      expect((await call(ignoring)).status).toBe(200);
    });

    it('checks validity dates against the gateway clock', async () => {
      const g = await gatewayFor(
        '<validate-client-certificate validate-revocation="false" />',
        passthrough(),
      );
      const notAfter = new X509Certificate(partner.certificatePem).validTo;
      clock.set(new Date(notAfter).getTime() - Date.now() + 86_400_000);
      try {
        expect((await call(g, partner)).json()).toEqual({
          statusCode: 401,
          message: 'Invalid client certificate: the certificate has expired.',
        });
        const lenient = await gatewayFor(
          '<validate-client-certificate validate-revocation="false" validate-not-after="false" />',
          passthrough(),
        );
        expect((await call(lenient, partner)).status).toBe(200);
      } finally {
        clock.set(0);
      }
    });

    it('matches identities: thumbprint, subject, common-name, issuer-subject, issuer-thumbprint, serial-number', async () => {
      const x509 = new X509Certificate(partner.certificatePem);
      const thumb = sha1(partner.certificatePem).toUpperCase();
      const issuerThumb = sha1(ca.certificatePem);
      const issuerSubject = new X509Certificate(ca.certificatePem).subject.split('\n').reverse().join(', ');
      const allowed = await gatewayFor(
        `<validate-client-certificate validate-revocation="false">
  <identities>
    <identity thumbprint="0000000000000000000000000000000000000000" />
    <identity thumbprint="${thumb.toLowerCase()}" common-name="partner-contoso" subject="${x509.subject.split('\n').reverse().join(', ')}" issuer-subject="${issuerSubject}" issuer-thumbprint="${issuerThumb}" serial-number="${x509.serialNumber}" />
  </identities>
</validate-client-certificate>
<set-header name="X-Seen-Thumbprint"><value>@(context.Request.Certificate.Thumbprint)</value></set-header>`,
        passthrough(),
      );
      const ok = await call(allowed, partner);
      expect(ok.status).toBe(200);
      expect(echoed(ok)['x-seen-thumbprint']).toBe(thumb);

      const other = await gatewayFor(
        '<validate-client-certificate validate-revocation="false"><identities><identity common-name="someone-else" /></identities></validate-client-certificate>',
        passthrough(),
      );
      expect((await call(other, partner)).json()).toEqual({
        statusCode: 401,
        message: 'Invalid client certificate: the certificate matches none of the allowed identities.',
      });
    });

    it('refuses what it cannot check at load time', async () => {
      await expect(gatewayFor('<validate-client-certificate />', passthrough())).rejects.toThrow(
        /:4: <validate-client-certificate>: validate-revocation is true .* set validate-revocation="false"/,
      );
      await expect(
        gatewayFor(
          '<validate-client-certificate validate-revocation="false"><identities><identity issuer-certificate-id="x" /></identities></validate-client-certificate>',
          passthrough(),
        ),
      ).rejects.toThrow(/<identity>: attribute issuer-certificate-id is not supported/);
      await expect(
        gatewayFor(
          '<validate-client-certificate validate-revocation="false"><identities><identity /></identities></validate-client-certificate>',
          passthrough(),
        ),
      ).rejects.toThrow(/an <identity> needs at least one attribute/);
    });
  });
});
