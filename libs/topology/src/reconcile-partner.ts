/**
 * One partner: its application and service principal, its public certificate (uploaded once,
 * found again by thumbprint), and its app role assignments on the topology's APIs.
 */
import type { ParsedCertificate } from '@certflow/certs';
import {
  markOf,
  type GraphApp,
  type GraphAssignment,
  type GraphKeyCredential,
  type ReconciledApi,
  type ReconciledPartner,
  type Run,
} from './reconcile-types';
import { quote } from './quote';
import type { TopologyPartner } from './types';

const enc = encodeURIComponent;

/**
 * The SHA-1 thumbprints (upper-case hex) a key credential's `customKeyIdentifier` may stand for.
 * Graph serialises that binary property as base64 (of the thumbprint, or of its hex text when a
 * tool set it so); the emulator returns the hex thumbprint itself.
 */
export function customKeyIdentifierThumbprints(id: string | null | undefined): string[] {
  if (!id) return [];
  const decoded = Buffer.from(id, 'base64');
  return [id, decoded.toString('hex'), decoded.toString('latin1')].map((v) => v.toUpperCase());
}

/** Whether a registered key credential is this certificate (the key itself when Graph returns it). */
export function isCertificate(credential: GraphKeyCredential, certificate: ParsedCertificate): boolean {
  if (credential.key === certificate.der.toString('base64')) return true;
  return customKeyIdentifierThumbprints(credential.customKeyIdentifier).includes(
    certificate.thumbprints.sha1Hex,
  );
}

/** The partner as the topology wants it; `apis` are the reconciled APIs of the topology, by name. */
export async function reconcilePartner(
  run: Run,
  partner: TopologyPartner,
  app: GraphApp | undefined,
  apis: Map<string, ReconciledApi>,
  certificate: ParsedCertificate | undefined,
): Promise<ReconciledPartner> {
  const subject = `partner ${partner.name}`;
  let objectId = '';
  let appId = '';
  let servicePrincipalId = '';
  if (app === undefined) {
    run.change('create', subject, quote(partner.displayName));
    if (run.apply) {
      const created = await run.createApplication<GraphApp>(
        {
          displayName: partner.displayName,
          signInAudience: 'AzureADMyOrg',
          tags: markOf('partner', partner.name),
        },
        `create ${subject}`,
      );
      objectId = created.id;
      appId = created.appId;
      servicePrincipalId = await run.createServicePrincipal(created.appId, subject);
    }
  } else {
    objectId = app.id;
    appId = app.appId;
    servicePrincipalId = await run.ensureServicePrincipal(app.appId, subject);
    if (app.displayName !== partner.displayName) {
      run.change('update', subject, `displayName ${quote(app.displayName)} → ${quote(partner.displayName)}`);
      if (run.apply)
        await run.graph.patch(
          `/applications/${enc(app.id)}`,
          { displayName: partner.displayName },
          `update ${subject}`,
        );
    }
  }
  const result: ReconciledPartner = { name: partner.name, objectId, appId, servicePrincipalId };
  if (certificate !== undefined) {
    const keyId = await ensureCertificate(run, subject, objectId, certificate);
    if (keyId !== undefined) result.certificateKeyId = keyId;
  }
  await reconcileGrants(run, partner, servicePrincipalId, apis);
  return result;
}

async function ensureCertificate(
  run: Run,
  subject: string,
  objectId: string,
  certificate: ParsedCertificate,
): Promise<string | undefined> {
  const read = async () =>
    (
      await run.afterCreate([objectId], () =>
        run.graph.get<{ keyCredentials?: GraphKeyCredential[] }>(
          `/applications/${enc(objectId)}?$select=id,keyCredentials`,
          `read the certificates of ${subject}`,
        ),
      )
    ).keyCredentials ?? [];
  const existing = objectId === '' ? [] : await read();
  const found = existing.find((k) => isCertificate(k, certificate));
  if (found) return found.keyId;
  run.change(
    'upload',
    subject,
    `certificate ${quote(certificate.subject)}, SHA-1 ${certificate.thumbprints.sha1Hex}, valid until ${certificate.notAfter.toISOString().slice(0, 10)}`,
  );
  if (!run.apply) return undefined;
  const keyCredentials = [
    ...existing.map(({ keyId, type, usage, key, displayName, customKeyIdentifier }) => ({
      keyId,
      type,
      usage,
      key,
      displayName,
      customKeyIdentifier,
    })),
    {
      type: 'AsymmetricX509Cert',
      usage: 'Verify',
      key: certificate.der.toString('base64'),
      displayName: certificate.subject,
    },
  ];
  await run.afterCreate([objectId], () =>
    run.graph.patch(
      `/applications/${enc(objectId)}`,
      { keyCredentials },
      `upload the certificate of ${subject}`,
    ),
  );
  const registered = (await read()).find((k) => isCertificate(k, certificate));
  if (!registered)
    throw new Error(`upload the certificate of ${subject}: Graph does not list it after the update`);
  return registered.keyId;
}

async function reconcileGrants(
  run: Run,
  partner: TopologyPartner,
  servicePrincipalId: string,
  apis: Map<string, ReconciledApi>,
): Promise<void> {
  const subject = `partner ${partner.name}`;
  const byResource = new Map(
    [...apis.values()].filter((a) => a.servicePrincipalId !== '').map((a) => [a.servicePrincipalId, a]),
  );
  const actual =
    servicePrincipalId === ''
      ? []
      : (
          await run.graph.list<GraphAssignment>(
            `/servicePrincipals/${enc(servicePrincipalId)}/appRoleAssignments`,
            `list the role assignments of ${subject}`,
          )
        ).filter((a) => byResource.has(a.resourceId) && !run.revoked.has(a.id));
  const kept = new Set<string>();
  for (const [apiName, values] of Object.entries(partner.roles)) {
    const api = apis.get(apiName);
    if (api === undefined) continue; // not created: an unmarked application is in its way (warned)
    for (const value of values) {
      const appRoleId = api.roleIds[value] ?? '';
      const have = actual.find(
        (a) => a.resourceId === api.servicePrincipalId && a.appRoleId === appRoleId && appRoleId !== '',
      );
      if (have) {
        kept.add(have.id);
        continue;
      }
      run.change('grant', subject, `${value} on api ${apiName}`);
      if (run.apply)
        await run.afterCreate([servicePrincipalId, api.servicePrincipalId], () =>
          run.graph.post(
            `/servicePrincipals/${enc(api.servicePrincipalId)}/appRoleAssignedTo`,
            { principalId: servicePrincipalId, resourceId: api.servicePrincipalId, appRoleId },
            `grant ${value} on api ${apiName} to ${subject}`,
          ),
        );
    }
  }
  for (const extra of actual.filter((a) => !kept.has(a.id))) {
    const api = byResource.get(extra.resourceId)!;
    const value =
      Object.entries(api.roleIds).find(([, id]) => id === extra.appRoleId)?.[0] ?? `role ${extra.appRoleId}`;
    run.change('revoke', subject, `${value} on api ${api.name} (not in the topology)`);
    if (run.apply)
      await run.graph.delete(
        `/servicePrincipals/${enc(api.servicePrincipalId)}/appRoleAssignedTo/${enc(extra.id)}`,
        `revoke ${value} on api ${api.name} from ${subject}`,
      );
  }
}
