import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { importPKCS8, SignJWT, type JWTPayload } from 'jose';
import {
  createSelfSignedCertificate,
  parseCertificate,
  pemToDer,
  type CertificateAndKey,
} from '@certflow/certs';
import { GraphClient, GraphRequestError } from './graph-client';
import { createProofOfPossession, PROOF_AUDIENCE } from './proof-of-possession';
import {
  assertionForm,
  clientAssertion,
  https,
  postForm,
  startFixture,
  type Fixture,
} from './emulator.test-helpers';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.close();
});

const partner = () => f.provisioned.partner;

async function tokenStatus(cert: CertificateAndKey): Promise<{ status: number; code?: number }> {
  const res = await postForm(
    f.emulator,
    assertionForm(partner().appId, await clientAssertion(f.emulator.tokenEndpoint, partner().appId, cert)),
  );
  return {
    status: res.status,
    ...(res.status === 200 ? {} : { code: (res.json().error_codes as number[])[0] }),
  };
}

async function proofWith(
  cert: CertificateAndKey,
  claims: JWTPayload = {},
  header: Record<string, unknown> = {},
  alg = 'RS256',
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ aud: PROOF_AUDIENCE, iss: partner().objectId, nbf: now, exp: now + 600, ...claims })
    .setProtectedHeader({
      alg,
      typ: 'JWT',
      x5t: parseCertificate(cert.certificatePem).thumbprints.sha1Base64Url,
      ...header,
    })
    .sign(await importPKCS8(cert.privateKeyPem, alg));
}

async function rawAddKey(token: string, body: unknown) {
  return https(f.emulator, `${f.emulator.graphUrl}/applications/${partner().objectId}/addKey`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

const keyCredentialOf = (cert: CertificateAndKey) => ({
  type: 'AsymmetricX509Cert',
  usage: 'Verify',
  key: pemToDer(cert.certificatePem).toString('base64'),
  displayName: 'next',
});

describe('addKey / removeKey: a partner rotates its own certificate', () => {
  it('adds a certificate with its own token and a proof, then removes the old one, which fails at once with AADSTS700027', async () => {
    const oldCert = f.partnerCert;
    const newCert = createSelfSignedCertificate({ commonName: 'contoso-partner 2' });
    const self = await GraphClient.connectWithCertificate(f.emulator, partner().appId, oldCert);
    try {
      // The partner's own Graph token carries no Graph permission at all.
      await expect(self.listApplications()).rejects.toMatchObject({ status: 403 });

      const added = await self.addKey(
        partner().objectId,
        pemToDer(newCert.certificatePem),
        await createProofOfPossession(partner().objectId, oldCert),
        'contoso 2',
      );
      expect(added).toMatchObject({
        type: 'AsymmetricX509Cert',
        usage: 'Verify',
        key: null,
        displayName: 'contoso 2',
        customKeyIdentifier: parseCertificate(newCert.certificatePem).thumbprints.sha1Hex,
      });
      expect(added.keyId).toMatch(/^[0-9a-f-]{36}$/);
      expect(await tokenStatus(newCert)).toEqual({ status: 200 });
      expect(await tokenStatus(oldCert)).toEqual({ status: 200 });

      const registered = await f.graph.getApplication(partner().objectId);
      const oldKeyId = registered.keyCredentials.find(
        (k) => k.customKeyIdentifier === parseCertificate(oldCert.certificatePem).thumbprints.sha1Hex,
      )!.keyId;
      // The proof for removing the old certificate is signed with the new one (PS256 works too).
      await self.removeKey(
        partner().objectId,
        oldKeyId,
        await createProofOfPossession(partner().objectId, newCert, { alg: 'PS256' }),
      );
      expect(await tokenStatus(oldCert)).toEqual({ status: 401, code: 700027 });
      expect(await tokenStatus(newCert)).toEqual({ status: 200 });
      expect((await f.graph.getApplication(partner().objectId)).keyCredentials.map((k) => k.keyId)).toEqual([
        added.keyId,
      ]);
    } finally {
      self.close();
      f.partnerCert = newCert;
    }
  });

  it('the admin (Application.ReadWrite.All) can call addKey too, still with a proof; another app cannot', async () => {
    const third = createSelfSignedCertificate({ commonName: 'contoso-partner 3' });
    const added = await f.graph.addKey(
      partner().objectId,
      third.certificatePem,
      await createProofOfPossession(partner().objectId, f.partnerCert),
    );
    expect(await tokenStatus(third)).toEqual({ status: 200 });

    // Another application with its own certificate and Graph token.
    const other = await f.graph.createApplication({ displayName: 'someone else' });
    await f.graph.createServicePrincipal(other.appId);
    const otherCert = createSelfSignedCertificate({ commonName: 'someone else' });
    await f.graph.addCertificate(other.id, otherCert.certificatePem);
    const otherClient = await GraphClient.connectWithCertificate(f.emulator, other.appId, otherCert);
    try {
      const err = await otherClient
        .removeKey(
          partner().objectId,
          added.keyId,
          await createProofOfPossession(partner().objectId, f.partnerCert),
        )
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GraphRequestError);
      expect(err).toMatchObject({ status: 403, code: 'Authorization_RequestDenied' });
      // Its own registration, though, it may roll.
      const otherNext = createSelfSignedCertificate({ commonName: 'someone else 2' });
      await otherClient.addKey(
        other.id,
        otherNext.certificatePem,
        await createProofOfPossession(other.id, otherCert),
      );
    } finally {
      otherClient.close();
    }
    await f.graph.removeKey(
      partner().objectId,
      added.keyId,
      await createProofOfPossession(partner().objectId, f.partnerCert),
    );
    expect(await tokenStatus(third)).toEqual({ status: 401, code: 700027 });
  });

  it('works with a token from elsewhere (GraphClient.withAccessToken)', async () => {
    const res = await postForm(
      f.emulator,
      assertionForm(
        partner().appId,
        await clientAssertion(f.emulator.tokenEndpoint, partner().appId, f.partnerCert),
        'https://graph.microsoft.com/.default',
      ),
    );
    const token = String(res.json().access_token);
    const client = GraphClient.withAccessToken(f.emulator, () => token);
    try {
      const extra = createSelfSignedCertificate({ commonName: 'extra' });
      const added = await client.addKey(
        partner().objectId,
        extra.certificatePem,
        await createProofOfPossession(partner().objectId, f.partnerCert),
      );
      await client.removeKey(
        partner().objectId,
        added.keyId,
        await createProofOfPossession(partner().objectId, extra),
      );
    } finally {
      client.close();
    }
  });
});

describe('addKey / removeKey refuse bad proofs and bad input', () => {
  let token: string;
  beforeAll(async () => {
    token = await f.graph.accessToken();
  });

  const unregistered = () => createSelfSignedCertificate({ commonName: 'not registered' });
  const now = () => Math.floor(Date.now() / 1000);
  const cases: [string, () => Promise<unknown>, number, string][] = [
    ['no proof', async () => undefined, 403, 'Authorization_RequestDenied'],
    ['a proof that is not a JWT', async () => 'not-a-jwt', 401, 'Authentication_MissingOrMalformed'],
    [
      'wrong aud (Microsoft Graph instead of 00000002-…)',
      () => proofWith(f.partnerCert, { aud: '00000003-0000-0000-c000-000000000000' }),
      401,
      'Authentication_MissingOrMalformed',
    ],
    [
      'iss = appId instead of the object id',
      () => proofWith(f.partnerCert, { iss: partner().appId }),
      401,
      'Authentication_MissingOrMalformed',
    ],
    [
      'exp more than 10 minutes after nbf',
      () => proofWith(f.partnerCert, { exp: now() + 601 }),
      401,
      'Authentication_MissingOrMalformed',
    ],
    [
      'expired',
      () => proofWith(f.partnerCert, { nbf: now() - 1200, exp: now() - 700 }),
      401,
      'Authentication_MissingOrMalformed',
    ],
    ['no nbf', () => proofWith(f.partnerCert, { nbf: undefined }), 401, 'Authentication_MissingOrMalformed'],
    [
      'signed by an unregistered certificate',
      () => proofWith(unregistered()),
      401,
      'Authentication_MissingOrMalformed',
    ],
    [
      'names the registered certificate but is signed by another key',
      () =>
        proofWith(
          unregistered(),
          {},
          { x5t: parseCertificate(f.partnerCert.certificatePem).thumbprints.sha1Base64Url },
        ),
      401,
      'Authentication_MissingOrMalformed',
    ],
    [
      'no thumbprint in the header',
      () => proofWith(f.partnerCert, {}, { x5t: undefined }),
      401,
      'Authentication_MissingOrMalformed',
    ],
    [
      'alg none',
      async () =>
        `${Buffer.from(JSON.stringify({ alg: 'none', x5t: parseCertificate(f.partnerCert.certificatePem).thumbprints.sha1Base64Url })).toString('base64url')}.${Buffer.from(JSON.stringify({ aud: PROOF_AUDIENCE, iss: partner().objectId, nbf: now(), exp: now() + 600 })).toString('base64url')}.`,
      401,
      'Authentication_MissingOrMalformed',
    ],
  ];
  for (const [name, makeProof, status, code] of cases) {
    it(`addKey: ${name} → ${status} ${code}`, async () => {
      const proof = await makeProof();
      const res = await rawAddKey(token, {
        keyCredential: keyCredentialOf(createSelfSignedCertificate({ commonName: 'candidate' })),
        passwordCredential: null,
        ...(proof === undefined ? {} : { proof }),
      });
      expect(res.status, res.text).toBe(status);
      expect((res.json().error as { code: string }).code).toBe(code);
    });
  }

  it('a certificate with a private key, an unknown property, a bad keyId and an unknown keyId are 400', async () => {
    const proof = await createProofOfPossession(partner().objectId, f.partnerCert);
    const withKey = await rawAddKey(token, {
      keyCredential: {
        ...keyCredentialOf(f.partnerCert),
        key: Buffer.from(f.partnerCert.privateKeyPem).toString('base64'),
      },
      passwordCredential: null,
      proof,
    });
    expect(withKey.status, withKey.text).toBe(400);
    const extraProperty = await rawAddKey(token, {
      keyCredential: keyCredentialOf(unregistered()),
      proof,
      extra: 1,
    });
    expect(extraProperty.status).toBe(400);
    const duplicate = await rawAddKey(token, {
      keyCredential: keyCredentialOf(f.partnerCert),
      passwordCredential: null,
      proof,
    });
    expect(duplicate.status, duplicate.text).toBe(400);
    const remove = (keyId: unknown) =>
      https(f.emulator, `${f.emulator.graphUrl}/applications/${partner().objectId}/removeKey`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ keyId, proof }),
      });
    expect((await remove('nope')).status).toBe(400);
    expect((await remove(randomUUID())).status).toBe(400);
    // Nothing changed: the partner still authenticates.
    expect(await tokenStatus(f.partnerCert)).toEqual({ status: 200 });
  });
});
