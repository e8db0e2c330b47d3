/**
 * Microsoft's Graph SDK for JavaScript (@microsoft/microsoft-graph-client), unchanged, pointed at
 * the emulator: its base URL and the emulator's host as a custom host (so the SDK's
 * authentication middleware sends the token there). Reads {graphBase, host, token} on stdin,
 * prints what each call returned as one JSON object. The development CA comes from
 * NODE_EXTRA_CA_CERTS, as a user would trust it.
 */
const { Client } = require('@microsoft/microsoft-graph-client');

async function main() {
  const input = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
  const client = Client.init({
    baseUrl: input.graphBase,
    defaultVersion: 'v1.0',
    customHosts: new Set([input.host]),
    authProvider: (done) => done(null, input.token),
  });
  const out = {};
  const created = await client.api('/applications').post({ displayName: 'graph sdk app' });
  out.created = { id: created.id, appId: created.appId, displayName: created.displayName };
  out.got = await client.api(`/applications/${created.id}`).select(['id', 'appId', 'displayName']).get();
  out.filtered = (await client.api('/applications').filter(`appId eq '${created.appId}'`).get()).value.map(
    (a) => a.id,
  );
  const password = await client
    .api(`/applications/${created.id}/addPassword`)
    .post({ passwordCredential: { displayName: 'sdk secret' } });
  out.password = { keyId: password.keyId, hasSecretText: typeof password.secretText === 'string' };
  await client.api(`/applications/${created.id}/removePassword`).post({ keyId: password.keyId });
  out.afterRemove = (await client.api(`/applications/${created.id}`).get()).passwordCredentials.length;
  await client.api(`/applications/${created.id}`).patch({ displayName: 'renamed by the sdk' });
  out.renamed = (await client.api(`/applications/${created.id}`).get()).displayName;
  const sp = await client.api('/servicePrincipals').post({ appId: created.appId });
  out.servicePrincipal = { appId: sp.appId };
  try {
    await client.api('/applications/00000000-0000-0000-0000-000000000000').get();
    out.notFound = 'no error';
  } catch (err) {
    out.notFound = { statusCode: err.statusCode, code: err.code };
  }
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exit(1);
});
