/**
 * `npm run provision`: the topology file, checked first, then one reconcile of a tenant's
 * directory through Microsoft Graph (plan or apply), with the same code the local stack runs
 * against the emulator. Prints the plan, what it left alone, the partners' certificates and
 * the APIM named values of each API.
 */
import { relative } from 'node:path';
import {
  apimNamedValues,
  changeLines,
  formatChanges,
  GraphRest,
  loadTopology,
  ReconcileError,
  reconcileTopology,
  TopologyError,
  type Change,
  type LoadedTopology,
  type ReconcileResult,
} from '@certflow/topology';
import { createCredential, signIn } from './credential';
import { tenantGuid } from './tenant';
import { parseProvisionOptions, USAGE, UsageError, type ProvisionOptions } from './options';
import {
  CertificateFileError,
  readPartnerCertificates,
  type PartnerCertificate,
} from './partner-certificates';

export interface ProvisionIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  cwd: string;
}

/** Runs the command; resolves with the process exit code (0 done, 1 sign-in/Graph failed, 2 bad input). */
export async function runProvision(argv: string[], io: ProvisionIo): Promise<number> {
  let options: ProvisionOptions | 'help';
  let loaded: LoadedTopology;
  let certificates: Map<string, PartnerCertificate>;
  try {
    options = parseProvisionOptions(argv, io.cwd);
    if (options === 'help') {
      io.stdout(`${USAGE}\n`);
      return 0;
    }
    loaded = loadTopology(options.topologyFile);
    checkAdoptions(options, loaded);
    certificates = readPartnerCertificates(loaded.topology.partners);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`provision: ${err.message}\nRun with --help for the options.\n`);
      return 2;
    }
    if (err instanceof TopologyError || err instanceof CertificateFileError) {
      io.stderr(`provision: ${err.message}\nNothing was contacted.\n`);
      return 2;
    }
    throw err;
  }

  const shown = (file: string) => relative(io.cwd, file) || file;
  let result: ReconcileResult;
  let tenantId: string;
  try {
    const credential = createCredential(options, (message) => io.stderr(`${message}\n`));
    const session = await signIn(
      credential,
      { tenantId: await tenantGuid(options), given: options.tenant },
      options.credential,
    );
    tenantId = session.tenantId;
    io.stderr(
      `provision: ${options.apply ? 'applying' : 'planning'} ${shown(loaded.file)} in tenant ${tenantId} ` +
        `as ${session.identity} through ${options.graphUrl}\n`,
    );
    const graph = new GraphRest({
      baseUrl: options.graphUrl,
      token: session.token,
      ...(options.ca === undefined ? {} : { ca: options.ca }),
    });
    try {
      result = await reconcileTopology({
        graph,
        topology: loaded.topology,
        apply: options.apply,
        prune: options.prune,
        adopt: options.adopt,
        requireConfirmation: true,
        confirm: options.confirm,
        certificate: (partner) => certificates.get(partner.name)?.der,
      });
    } finally {
      graph.close();
    }
  } catch (err) {
    // A failed apply may follow writes that succeeded: Graph has no transactions, so they stay.
    if (err instanceof ReconcileError && err.applied.length > 0)
      io.stdout(`${appliedBeforeFailure(err.applied)}\n`);
    io.stderr(`provision: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }

  io.stdout(`${formatChanges(result, shown(loaded.file))}\n`);
  io.stdout(partnerReport(result, certificates, tenantId, shown));
  io.stdout(namedValuesReport(result, loaded, options, tenantId, shown));
  if (!result.applied && result.changes.length > 0)
    io.stdout(`\nTo make these changes, run again with --apply.\n`);
  return 0;
}

/** Every `--adopt` and `--confirm` names an api or partner of the topology. */
function checkAdoptions(options: ProvisionOptions, loaded: LoadedTopology): void {
  for (const [flag, kind, names, known] of [
    ['--adopt', 'api', options.adopt.apis, loaded.topology.apis],
    ['--adopt', 'partner', options.adopt.partners, loaded.topology.partners],
    ['--confirm', 'partner', options.confirm, loaded.topology.partners],
  ] as const)
    for (const name of Object.keys(names))
      if (!known.some((k) => k.name === name))
        throw new UsageError(`${flag} ${kind}:${name}: ${loaded.file} has no ${kind} "${name}"`);
}

/** The changes an apply made before it failed, in the plan's format under a header that says so. */
function appliedBeforeFailure(applied: Change[]): string {
  const count = applied.length === 1 ? '1 change (it stays' : `${applied.length} changes (they stay`;
  return [`Applied ${count} in the directory) before the failure:`, ...changeLines(applied)].join('\n');
}

/** Per partner: the client id to send it, and its certificate (the .cer it sent, or a reminder). */
function partnerReport(
  result: ReconcileResult,
  certificates: Map<string, PartnerCertificate>,
  tenantId: string,
  shown: (file: string) => string,
): string {
  if (result.partners.length === 0) return '';
  const lines = result.partners.map((partner) => {
    const clientId = partner.appId === '' ? '(assigned when applied)' : partner.appId;
    const cer = certificates.get(partner.name);
    const certificate = cer
      ? `certificate ${shown(cer.file)} (SHA-1 ${cer.sha1}, ${cer.subject}, valid until ${cer.validTo.toISOString().slice(0, 10)})`
      : `no certificate.cerFile; upload the partner's .cer when it arrives (Certificates & secrets), or set certificate.cerFile and apply again`;
    return `  ${partner.name}: client id ${clientId}; ${certificate}`;
  });
  return `\nPartners (send each its client id and the tenant id ${tenantId}; certificates only from the .cer it sent):\n${lines.join('\n')}\n`;
}

function namedValuesReport(
  result: ReconcileResult,
  loaded: LoadedTopology,
  options: ProvisionOptions,
  tenantId: string,
  shown: (file: string) => string,
): string {
  const entraInstance = options.authorityHost;
  const blocks = result.apis.map((api) => {
    const policy = loaded.topology.apis.find((a) => a.name === api.name)?.policy;
    const values = apimNamedValues(api, entraInstance, tenantId);
    const width = Math.max(...Object.keys(values).map((k) => k.length));
    const lines = Object.entries(values).map(
      ([name, value]) => `  ${name.padEnd(width)}  ${value === '' ? '(assigned when applied)' : value}`,
    );
    const where = policy === undefined ? '' : ` (policy ${shown(policy)})`;
    return `\nAPIM named values for api ${api.name}${where}:\n${lines.join('\n')}\n`;
  });
  return blocks.join('');
}
