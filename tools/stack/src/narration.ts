/** Steps 1 to 4 of `npm start`'s narration: the topology reconciled, then each partner's certificate. */
import { formatChanges, type LoadedTopology, type ReconciledPartner } from '@certflow/topology';
import type { StepReport } from './call-narration';
import type { PartnerCertificate } from './partners';
import type { TopologySync } from './topology-sync';
import { shownPath } from './workspace';

export function topologyStep({ file, topology }: LoadedTopology, sync: TopologySync): StepReport {
  const { result } = sync;
  const details: [string, string][] = [];
  result.apis.forEach((api, i) => {
    const roles = topology.apis[i]!.appRoles.map((r) => r.value).join(', ');
    details.push([
      `api ${api.name}`,
      `appId ${api.appId}  ${api.identifierUri}  roles ${roles || '(none)'}  ${i === 0 ? '(served locally)' : '(registered, not served locally)'}`,
    ]);
  });
  result.partners.forEach((partner, i) => {
    const grants = Object.entries(topology.partners[i]!.roles)
      .map(([api, roles]) => `${roles.join(', ') || 'no role'} on ${api}`)
      .join('; ');
    details.push([`partner ${partner.name}`, `appId ${partner.appId}  granted ${grants || 'no role'}`]);
  });
  return {
    step: 1,
    title: 'App registrations, app roles and grants, reconciled with the topology',
    where: `${shownPath(file)} → @certflow/topology reconcile → emulator Graph /graph/v1.0`,
    details,
    lines: [
      ...sync.notes.map((n) => `migration: ${n}`),
      ...formatChanges(result, file).split('\n'),
      ...sync.removedDirectories.map((d) => `removed ${d} (its partner left the topology)`),
      ...sync.keptDirectories,
    ],
  };
}

export function certificateSteps(
  cert: PartnerCertificate,
  registered: ReconciledPartner,
  keyId: string,
  uploaded: boolean,
): StepReport[] {
  const partner = cert.partner.name;
  return [
    {
      step: 2,
      partner,
      title: 'The partner generates its key pair and certificate',
      where: 'apps/partner-worker (cert create), libs/certs',
      details: [
        ['private key', `${cert.privateKeyPath} (mode 0600, never leaves the partner)`],
        ['certificate', `${cert.subject}, valid until ${cert.notAfter}`],
        ['SHA-256', cert.sha256Hex],
        ['created', cert.created ? 'now' : 'earlier (reused from the state directory)'],
      ],
      ...(cert.rotateCommand
        ? {
            lines: [
              `The existing certificate does not match the topology's certificate settings; it is kept (the stack never replaces a partner's keys):`,
              ...cert.differences.map((d) => `  ${d}`),
              `To roll it while the stack runs: ${cert.rotateCommand}`,
            ],
          }
        : {}),
    },
    {
      step: 3,
      partner,
      title: 'The partner sends only the public certificate (.cer)',
      where: 'libs/certs (DER export)',
      details: [
        ['file', `${cert.cerPath} (${cert.cer.length} bytes, DER, public key only)`],
        ['SHA-1 (x5t)', cert.sha1Hex],
      ],
    },
    {
      step: 4,
      partner,
      title: 'You upload it under Certificates & secrets',
      where: 'tools/entra-emulator, Graph PATCH /applications/{id} keyCredentials (through reconcile)',
      details: [
        ['application', `${cert.partner.displayName} (${registered.objectId})`],
        ['keyCredential', `${keyId} (${uploaded ? 'added' : 'already registered'})`],
      ],
    },
  ];
}
