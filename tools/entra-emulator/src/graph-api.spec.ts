import { describe, expect, it } from 'vitest';
import { randomUUID, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import forge from 'node-forge';
import { createSelfSignedCertificate, pemToDer, parseCertificate } from '@certflow/certs';
import { statePath } from './state-store';
import { API_URI, assertionForm, clientAssertion, postForm } from './emulator.test-helpers';
import { assignedTo, expectGraphError, useGraphFixture } from './graph.test-helpers';

const { f, adminToken, graph } = useGraphFixture();

describe('authentication of Graph calls', () => {
  it('401 InvalidAuthenticationToken without a token', async () => {
    const error = expectGraphError(
      await graph('GET', '/applications', undefined, null),
      401,
      'InvalidAuthenticationToken',
    );
    expect(error.message).toBe('Access token is empty.');
  });

  it('401 for a token for another audience, a tampered one and an expired one', async () => {
    const assertion = await clientAssertion(
      f.emulator.tokenEndpoint,
      f.provisioned.partner.appId,
      f.partnerCert,
    );
    const apiToken = String(
      (await postForm(f.emulator, assertionForm(f.provisioned.partner.appId, assertion))).json().access_token,
    );
    expectGraphError(
      await graph('GET', '/applications', undefined, apiToken),
      401,
      'InvalidAuthenticationToken',
    );

    const [h, p, s] = adminToken().split('.');
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString());
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, roles: ['Application.ReadWrite.All', 'x'] })).toString('base64url')}.${s}`;
    expectGraphError(
      await graph('GET', '/applications', undefined, tampered),
      401,
      'InvalidAuthenticationToken',
    );

    const expired = await f.emulator.signAccessToken(
      { ...claims, exp: Math.floor(Date.now() / 1000) - 3600 },
      { x5t: 'ignored' },
    );
    const error = expectGraphError(
      await graph('GET', '/applications', undefined, expired),
      401,
      'InvalidAuthenticationToken',
    );
    expect(error.message).toContain('expired');

    const none = await f.emulator.signAccessToken(claims, { alg: 'none' });
    expectGraphError(await graph('GET', '/applications', undefined, none), 401, 'InvalidAuthenticationToken');
  });

  it('403 Authorization_RequestDenied for a Graph token without Application.ReadWrite.All', async () => {
    const secret = (await f.graph.addPassword(f.provisioned.partner.objectId)).secretText!;
    const res = await postForm(f.emulator, {
      grant_type: 'client_credentials',
      client_id: f.provisioned.partner.appId,
      client_secret: secret,
      scope: 'https://graph.microsoft.com/.default',
    });
    expect(res.status, res.text).toBe(200);
    expectGraphError(
      await graph('GET', '/applications', undefined, String(res.json().access_token)),
      403,
      'Authorization_RequestDenied',
    );
  });
});

describe('applications', () => {
  it('POST creates (201, Graph shape), GET lists and reads by id and by appId', async () => {
    const res = await graph('POST', '/applications', {
      displayName: 'created',
      identifierUris: ['api://created'],
    });
    expect(res.status, res.text).toBe(201);
    const app = res.json();
    expect(app).toMatchObject({
      '@odata.context': `${f.emulator.graphUrl}/$metadata#applications/$entity`,
      displayName: 'created',
      identifierUris: ['api://created'],
      keyCredentials: [],
      passwordCredentials: [],
      appRoles: [],
      api: { requestedAccessTokenVersion: null },
    });
    expect(app.id).not.toBe(app.appId);
    const listed = (await graph('GET', '/applications')).json().value as { id: string }[];
    expect(listed.map((a) => a.id)).toContain(app.id);
    expect((await graph('GET', `/applications/${app.id}`)).json().appId).toBe(app.appId);
    expect((await graph('GET', `/applications(appId='${app.appId}')`)).json().id).toBe(app.id);
    const filtered = (
      await graph('GET', `/applications?$filter=${encodeURIComponent(`appId eq '${app.appId}'`)}`)
    ).json().value as unknown[];
    expect(filtered).toHaveLength(1);
    expectGraphError(await graph('GET', `/applications/${randomUUID()}`), 404, 'Request_ResourceNotFound');
  });

  it('refuses unknown properties, bad JSON, duplicate identifier URIs and bad filters with 400', async () => {
    expectGraphError(
      await graph('POST', '/applications', { displayName: 'x', web: {} }),
      400,
      'Request_BadRequest',
    );
    expectGraphError(await graph('POST', '/applications', '{"displayName":'), 400, 'BadRequest');
    expectGraphError(await graph('POST', '/applications', {}), 400, 'Request_BadRequest');
    expectGraphError(
      await graph('POST', '/applications', { displayName: 'dup', identifierUris: [API_URI] }),
      400,
      'Request_MultipleObjectsWithSameKeyValue',
    );
    expectGraphError(
      await graph('GET', `/applications?$filter=${encodeURIComponent('startswith(displayName,"x")')}`),
      400,
      'Request_UnsupportedQuery',
    );
    expectGraphError(await graph('GET', '/nothing'), 400, 'BadRequest');
  });

  it('keyCredentials: defaults from the certificate, key only with $select, PATCH replaces the collection (204)', async () => {
    const app = await f.graph.createApplication({ displayName: 'keys' });
    const a = createSelfSignedCertificate({ commonName: 'a' });
    const b = createSelfSignedCertificate({ commonName: 'b' });
    const patch = await graph('PATCH', `/applications/${app.id}`, {
      keyCredentials: [
        {
          type: 'AsymmetricX509Cert',
          usage: 'Verify',
          key: pemToDer(a.certificatePem).toString('base64'),
          displayName: 'a',
        },
      ],
    });
    expect(patch.status, patch.text).toBe(204);
    expect(patch.text).toBe('');
    const cert = parseCertificate(a.certificatePem);
    const read = (await graph('GET', `/applications/${app.id}`)).json();
    expect(read.keyCredentials).toEqual([
      {
        customKeyIdentifier: cert.thumbprints.sha1Hex,
        displayName: 'a',
        endDateTime: cert.notAfter.toISOString(),
        key: null,
        keyId: expect.stringMatching(/^[0-9a-f-]{36}$/),
        startDateTime: cert.notBefore.toISOString(),
        type: 'AsymmetricX509Cert',
        usage: 'Verify',
      },
    ]);
    const selected = (await graph('GET', `/applications/${app.id}?$select=keyCredentials`)).json();
    expect(Object.keys(selected).sort()).toEqual(['@odata.context', 'id', 'keyCredentials']);
    expect((selected.keyCredentials as { key: string }[])[0]!.key).toBe(cert.der.toString('base64'));

    await f.graph.addCertificate(app.id, b.certificatePem);
    expect((await f.graph.getApplication(app.id)).keyCredentials).toHaveLength(2);
    await f.graph.updateApplication(app.id, { keyCredentials: [] });
    expect((await f.graph.getApplication(app.id)).keyCredentials).toHaveLength(0);
  });

  it('refuses a keyCredential holding a private key, or a malformed one, and changes nothing', async () => {
    const app = f.provisioned.partner;
    const before = (await graph('GET', `/applications/${app.objectId}?$select=keyCredentials`)).text;
    const stateBefore = readFileSync(statePath(f.stateDir), 'utf8');
    const pair = createSelfSignedCertificate({ commonName: 'careless' });
    const pkcs8Der = createPrivateKey(pair.privateKeyPem).export({ type: 'pkcs8', format: 'der' });
    const pkcs1Der = createPrivateKey(pair.privateKeyPem).export({ type: 'pkcs1', format: 'der' });
    const p12 = forge.asn1
      .toDer(
        forge.pkcs12.toPkcs12Asn1(
          forge.pki.privateKeyFromPem(pair.privateKeyPem),
          [forge.pki.certificateFromPem(pair.certificatePem)],
          null,
          {
            algorithm: '3des',
          },
        ),
      )
      .getBytes();
    const keys = [
      Buffer.from(pair.privateKeyPem + pair.certificatePem).toString('base64'),
      pkcs8Der.toString('base64'),
      pkcs1Der.toString('base64'),
      Buffer.from(p12, 'binary').toString('base64'),
      'not base64!',
      Buffer.from('hello').toString('base64'),
      Buffer.from(pair.certificatePem).toString('base64'),
    ];
    for (const [i, key] of keys.entries()) {
      const res = await graph('PATCH', `/applications/${app.objectId}`, {
        keyCredentials: [{ type: 'AsymmetricX509Cert', usage: 'Verify', key }],
      });
      const error = expectGraphError(res, 400, 'Request_BadRequest');
      if (i < 4) expect(error.message).toContain('private key');
    }
    expectGraphError(
      await graph('PATCH', `/applications/${app.objectId}`, {
        keyCredentials: [
          { type: 'Symmetric', usage: 'Verify', key: pemToDer(pair.certificatePem).toString('base64') },
        ],
      }),
      400,
      'Request_BadRequest',
    );
    await expect(
      f.graph.addCertificate(app.objectId, pair.privateKeyPem + pair.certificatePem),
    ).rejects.toThrow(/private key/);
    expect((await graph('GET', `/applications/${app.objectId}?$select=keyCredentials`)).text).toBe(before);
    expect(readFileSync(statePath(f.stateDir), 'utf8')).toBe(stateBefore);
  });

  it('addPassword returns the secret once; GET shows only the hint', async () => {
    const app = await f.graph.createApplication({ displayName: 'secrets' });
    await f.graph.createServicePrincipal(app.appId);
    const created = await f.graph.addPassword(app.id, 'ci');
    expect(created.secretText).toMatch(/^.{3}8Q~.{34}$/);
    const read = await f.graph.getApplication(app.id);
    expect(read.passwordCredentials).toEqual([
      expect.objectContaining({ hint: created.secretText!.slice(0, 3), secretText: null, displayName: 'ci' }),
    ]);
    expect(readFileSync(statePath(f.stateDir), 'utf8')).not.toContain(created.secretText!);
    const token = await postForm(f.emulator, {
      grant_type: 'client_credentials',
      client_id: app.appId,
      client_secret: created.secretText!,
      scope: `${API_URI}/.default`,
    });
    expect(token.status, token.text).toBe(200);
  });

  it('removePassword: the secret stops working at once; unknown or malformed keyIds change nothing', async () => {
    const app = await f.graph.createApplication({ displayName: 'secret-removal' });
    await f.graph.createServicePrincipal(app.appId);
    const kept = await f.graph.addPassword(app.id, 'kept');
    const removed = await f.graph.addPassword(app.id, 'removed');
    const tokenWith = (secret: string) =>
      postForm(f.emulator, {
        grant_type: 'client_credentials',
        client_id: app.appId,
        client_secret: secret,
        scope: `${API_URI}/.default`,
      });
    expect((await tokenWith(removed.secretText!)).status).toBe(200);

    const stateBefore = readFileSync(statePath(f.stateDir), 'utf8');
    expectGraphError(
      await graph('POST', `/applications/${app.id}/removePassword`, { keyId: randomUUID() }),
      400,
      'Request_BadRequest',
    );
    expectGraphError(
      await graph('POST', `/applications/${app.id}/removePassword`, { keyId: 'not-a-guid' }),
      400,
      'Request_BadRequest',
    );
    expect(readFileSync(statePath(f.stateDir), 'utf8')).toBe(stateBefore);

    await f.graph.removePassword(app.id, removed.keyId);
    const refused = await tokenWith(removed.secretText!);
    expect(refused.status).toBe(401);
    expect(refused.json().error_codes).toEqual([7000215]);
    expect((await tokenWith(kept.secretText!)).status).toBe(200);
    expect((await f.graph.getApplication(app.id)).passwordCredentials.map((p) => p.keyId)).toEqual([
      kept.keyId,
    ]);
  });
});

describe('service principals and app role assignments', () => {
  it('creates, filters by appId, refuses duplicates (409), and assigns roles once', async () => {
    const app = await f.graph.createApplication({ displayName: 'sp-test' });
    const sp = await f.graph.createServicePrincipal(app.appId);
    expect(sp).toMatchObject({
      appId: app.appId,
      displayName: 'sp-test',
      servicePrincipalNames: [app.appId],
    });
    expect((await f.graph.findServicePrincipalByAppId(app.appId))?.id).toBe(sp.id);
    expect(await f.graph.findServicePrincipalByAppId(randomUUID())).toBeUndefined();
    expectGraphError(
      await graph('POST', '/servicePrincipals', { appId: app.appId }),
      409,
      'Request_MultipleObjectsWithSameKeyValue',
    );
    expectGraphError(
      await graph('POST', '/servicePrincipals', { appId: randomUUID() }),
      400,
      'Request_BadRequest',
    );

    const assignment = {
      principalId: sp.id,
      resourceId: f.provisioned.api.servicePrincipalId,
      appRoleId: f.provisioned.api.roleIds['Orders.Write']!,
    };
    const created = await graph('POST', assignedTo(assignment.resourceId), assignment);
    expect(created.status, created.text).toBe(201);
    expect(created.json()).toMatchObject({
      ...assignment,
      principalType: 'ServicePrincipal',
      principalDisplayName: 'sp-test',
      resourceDisplayName: 'orders API',
    });
    expectGraphError(
      await graph('POST', assignedTo(assignment.resourceId), assignment),
      400,
      'Request_BadRequest',
    );
    expectGraphError(
      await graph('POST', assignedTo(assignment.resourceId), {
        ...assignment,
        appRoleId: randomUUID(),
      }),
      400,
      'Request_BadRequest',
    );
    const listed = (await graph('GET', assignedTo(assignment.resourceId))).json().value as unknown[];
    expect(listed.length).toBeGreaterThanOrEqual(2);
  });

  it('the assigned roles appear in the token', async () => {
    const cert = createSelfSignedCertificate({ commonName: 'roles' });
    const app = await f.graph.createApplication({ displayName: 'roles-test' });
    const sp = await f.graph.createServicePrincipal(app.appId);
    await f.graph.addCertificate(app.id, cert.certificatePem);
    for (const role of ['Orders.Read', 'Orders.Write']) {
      await f.graph.assignAppRole({
        principalId: sp.id,
        resourceId: f.provisioned.api.servicePrincipalId,
        appRoleId: f.provisioned.api.roleIds[role]!,
      });
    }
    const assertion = await clientAssertion(f.emulator.tokenEndpoint, app.appId, cert);
    const res = await postForm(f.emulator, assertionForm(app.appId, assertion));
    const claims = JSON.parse(
      Buffer.from(String(res.json().access_token).split('.')[1]!, 'base64url').toString(),
    );
    expect(claims.roles).toEqual(['Orders.Read', 'Orders.Write']);
  });
});
