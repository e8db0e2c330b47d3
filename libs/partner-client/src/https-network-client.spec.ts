import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeAssertionFromForm,
  HttpsNetworkClient,
  TransportError,
  type NetworkExchange,
} from './https-network-client';
import { DevelopmentCa } from '@certflow/certs';
import { fakeJwt, json, startHttpsServer, tempDir, type TestServer, rejectionOf } from '@certflow/testing';

describe('HttpsNetworkClient', () => {
  const dir = tempDir();
  let ca: DevelopmentCa;
  let otherCa: DevelopmentCa;
  let server: TestServer;
  let lastBody = '';

  beforeAll(async () => {
    ca = DevelopmentCa.loadOrCreate(`${dir.path}/a`);
    otherCa = DevelopmentCa.loadOrCreate(`${dir.path}/b`);
    server = await startHttpsServer(ca, (req, body, res) => {
      lastBody = body;
      if (req.url === '/html')
        return void res.writeHead(502, { 'content-type': 'text/html' }).end('<html>bad gateway</html>');
      if (req.url === '/slow') return void setTimeout(() => json(res, 200, {}), 500);
      json(
        res,
        req.method === 'POST' ? 400 : 200,
        { method: req.method, ct: req.headers['content-type'] },
        { 'X-Ms-Request-Id': 'r1' },
      );
    });
  });
  afterAll(async () => {
    await server.close();
    dir.remove();
  });

  it('GETs and POSTs over TLS trusting the given CA, returning parsed JSON and lower-case headers', async () => {
    const client = new HttpsNetworkClient({ ca: ca.certificatePem });
    const get = await client.sendGetRequestAsync<{ method: string }>(`${server.url}/x`);
    expect(get).toMatchObject({ status: 200, body: { method: 'GET' } });
    expect(get.headers['x-ms-request-id']).toBe('r1');
    const post = await client.sendPostRequestAsync<{ method: string; ct: string }>(`${server.url}/t`, {
      body: 'a=1',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(post).toMatchObject({
      status: 400,
      body: { method: 'POST', ct: 'application/x-www-form-urlencoded' },
    });
    expect(lastBody).toBe('a=1');
    expect(client.requestCounts).toEqual({ get: 1, post: 1 });
    client.close();
  });

  it('names the TLS failure instead of hiding it', async () => {
    const client = new HttpsNetworkClient({ ca: otherCa.certificatePem });
    const err = await rejectionOf<TransportError>(client.sendGetRequestAsync(`${server.url}/x`));
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).causeCode).toMatch(
      /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/,
    );
    expect((err as TransportError).message).toMatch(/PARTNER_CA_FILE/);
    client.close();
  });

  it('names a refused connection and a timeout', async () => {
    const client = new HttpsNetworkClient({ ca: ca.certificatePem, timeoutMs: 100 });
    const refused = await rejectionOf<TransportError>(client.sendGetRequestAsync('https://localhost:1/x'));
    expect(refused.causeCode).toBe('ECONNREFUSED');
    const slow = await rejectionOf<TransportError>(client.sendGetRequestAsync(`${server.url}/slow`));
    expect(slow.causeCode).toBe('ETIMEDOUT');
    client.close();
  });

  it('turns a non-JSON error page into an OAuth-shaped error body', async () => {
    const client = new HttpsNetworkClient({ ca: ca.certificatePem });
    const res = await client.sendPostRequestAsync<{ error: string; error_description: string }>(
      `${server.url}/html`,
      { body: '' },
    );
    expect(res.status).toBe(502);
    expect(res.body.error).toBe('invalid_response');
    expect(res.body.error_description).toContain('bad gateway');
    client.close();
  });

  it('lets observers see the client assertion without its signature', async () => {
    const seen: NetworkExchange[] = [];
    const client = new HttpsNetworkClient({
      ca: ca.certificatePem,
      observer: { onRequest: (e) => seen.push(e) },
    });
    const assertion = fakeJwt({ iss: 'me', jti: 'j1' });
    await client.sendPostRequestAsync(`${server.url}/t`, {
      body: new URLSearchParams({ client_assertion: assertion }).toString(),
    });
    expect(seen[0]?.assertion).toEqual({
      header: { typ: 'JWT', alg: 'RS256', kid: 'test' },
      claims: { iss: 'me', jti: 'j1' },
    });
    expect(JSON.stringify(seen)).not.toContain(assertion.split('.')[2]);
    expect(decodeAssertionFromForm('grant_type=client_credentials')).toBeUndefined();
    client.close();
  });
});
