/**
 * The command line of `npm run provision`, checked before anything is read or contacted:
 * every error names the option at fault.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_TOPOLOGY_FILE, quote } from '@certflow/topology';

export const DEFAULT_GRAPH_URL = 'https://graph.microsoft.com/v1.0';
export const DEFAULT_AUTHORITY_HOST = 'https://login.microsoftonline.com';
export const CREDENTIAL_KINDS = ['default', 'cli', 'device-code'] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

export interface ProvisionOptions {
  /** `--apply`: make the changes; otherwise (`--plan`) only show them. */
  apply: boolean;
  prune: boolean;
  /** Absolute path of the topology file. */
  topologyFile: string;
  /** Tenant GUID or verified domain, as given. */
  tenant: string;
  credential: CredentialKind;
  /** Public client application for `--credential device-code` (default: the Azure CLI's). */
  clientId: string | undefined;
  /** Without a trailing slash. */
  graphUrl: string;
  /** Without a trailing slash; also the `entra-instance` named value. */
  authorityHost: string;
  /** PEM of the extra CA(s) to trust, from `--ca-file`. */
  ca: string | undefined;
  /** `--adopt`: unmarked registrations to take over (name → application object id). */
  adopt: { apis: Record<string, string>; partners: Record<string, string> };
  /** `--confirm`: existing marked partner registrations confirmed for their first roles (name → object id). */
  confirm: Record<string, string>;
}

/** A bad command line: printed with a pointer to `--help`, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const USAGE = `Usage: npm run provision -- (--plan | --apply) --tenant TENANT [options]

Brings a Microsoft Entra tenant's app registrations to what the topology file describes, through
Microsoft Graph: the APIs with their app roles, the partners, the roles granted to each partner,
and the partners' certificates (only from the .cer file each partner sent). Only objects it
created (tagged "certflow-topology") are ever changed or removed.

  --plan                    show what would change; nothing is written
  --apply                   make the changes (idempotent: a second run changes nothing)
  --prune                   also delete marked registrations no longer in the topology
  --tenant TENANT           the tenant's GUID or one of its domains (required)
  --topology FILE           the topology file (default ${DEFAULT_TOPOLOGY_FILE})
  --credential KIND         how to sign in (default: default)
                              default      DefaultAzureCredential: AZURE_CLIENT_ID with
                                           AZURE_CLIENT_CERTIFICATE_PATH (or a secret),
                                           workload or managed identity, Azure CLI, …
                              cli          the account of \`az login\`
                              device-code  a code to enter at the sign-in page (printed on stderr)
  --client-id ID            public client application for --credential device-code
                            (default: the Azure CLI's)
  --graph-url URL           Microsoft Graph (default ${DEFAULT_GRAPH_URL})
  --authority-host URL      Entra ID sign-in host (default ${DEFAULT_AUTHORITY_HOST});
                            any other host is used as given, without instance discovery
  --ca-file PEM             also trust this CA for sign-in and Graph (e.g. the local emulator's)
  --adopt KIND:NAME=ID      take over an existing registration made without provision (by hand,
                            in the portal) as api or partner NAME of the topology, by its object
                            id, and mark it; repeatable. Its client id stays the same
  --confirm partner:NAME=ID confirm that the existing registration carrying partner NAME's mark,
                            by its object id, is the one to get its first roles (the plan
                            names it and asks for this when nothing certflow manages has
                            granted it a role yet); repeatable
  --help                    this text

Exit codes: 0 done (or planned), 1 sign-in or Graph failed (a refused permission is named),
2 bad command line or topology file (nothing was contacted).`;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DOMAIN =
  /^(?=.{3,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/i;

export function isGuid(value: string): boolean {
  return GUID.test(value);
}

/** `'help'` for `--help`; otherwise the checked options, or a UsageError naming the option. */
export function parseProvisionOptions(argv: string[], cwd: string): ProvisionOptions | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        plan: { type: 'boolean' },
        apply: { type: 'boolean' },
        prune: { type: 'boolean' },
        tenant: { type: 'string' },
        topology: { type: 'string' },
        credential: { type: 'string' },
        'client-id': { type: 'string' },
        'graph-url': { type: 'string' },
        'authority-host': { type: 'string' },
        'ca-file': { type: 'string' },
        adopt: { type: 'string', multiple: true },
        confirm: { type: 'string', multiple: true },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return 'help';
  if (values.plan === values.apply) throw new UsageError('give exactly one of --plan and --apply');
  const tenant = required(values.tenant, '--tenant');
  if (!isGuid(tenant) && !DOMAIN.test(tenant))
    throw new UsageError(`--tenant: "${tenant}" is neither a tenant GUID nor a domain name`);
  const credential = values.credential ?? 'default';
  if (!(CREDENTIAL_KINDS as readonly string[]).includes(credential))
    throw new UsageError(`--credential: "${credential}" is not one of ${CREDENTIAL_KINDS.join(', ')}`);
  const clientId = values['client-id'];
  if (clientId !== undefined) {
    if (credential !== 'device-code')
      throw new UsageError('--client-id applies only to --credential device-code');
    if (!isGuid(clientId))
      throw new UsageError(`--client-id: "${clientId}" is not an application (client) ID GUID`);
  }
  const authorityHost = optionalHttpsUrl(values['authority-host'], '--authority-host');
  if (authorityHost !== undefined && credential === 'cli')
    throw new UsageError(
      '--authority-host does not apply to --credential cli: az signs in to its own cloud (az cloud set)',
    );
  const caFile = values['ca-file'] === undefined ? undefined : resolve(cwd, values['ca-file']);
  return {
    apply: values.apply === true,
    prune: values.prune === true,
    topologyFile: resolve(cwd, values.topology ?? DEFAULT_TOPOLOGY_FILE),
    tenant,
    credential: credential as CredentialKind,
    clientId,
    graphUrl: optionalHttpsUrl(values['graph-url'], '--graph-url') ?? DEFAULT_GRAPH_URL,
    authorityHost: authorityHost ?? DEFAULT_AUTHORITY_HOST,
    ca: caFile === undefined ? undefined : readCaFile(caFile),
    adopt: parseAdoptions(values.adopt ?? []),
    confirm: parseConfirmations(values.confirm ?? []),
  };
}

const ADOPTION = /^(api|partner):([a-z][a-z0-9-]{0,39})=([0-9a-f-]{36})$/i;

function parseAdoptions(values: string[]): ProvisionOptions['adopt'] {
  const adopt: ProvisionOptions['adopt'] = { apis: {}, partners: {} };
  for (const value of values) {
    const match = ADOPTION.exec(value.trim());
    if (!match || !isGuid(match[3]!))
      throw new UsageError(
        `--adopt: "${value}" is not KIND:NAME=OBJECT_ID (KIND api or partner, NAME from the topology, OBJECT_ID the application's object id)`,
      );
    const [, kind, name, objectId] = match as unknown as [string, 'api' | 'partner', string, string];
    const into = kind === 'api' ? adopt.apis : adopt.partners;
    if (into[name] !== undefined) throw new UsageError(`--adopt: ${kind} ${name} is given twice`);
    into[name] = objectId.toLowerCase();
  }
  return adopt;
}

const CONFIRMATION = /^partner:([a-z][a-z0-9-]{0,39})=([0-9a-f-]{36})$/i;

function parseConfirmations(values: string[]): ProvisionOptions['confirm'] {
  const confirm: ProvisionOptions['confirm'] = {};
  for (const value of values) {
    const match = CONFIRMATION.exec(value.trim());
    if (!match || !isGuid(match[2]!))
      throw new UsageError(
        `--confirm: ${quote(value)} is not partner:NAME=OBJECT_ID (NAME from the topology, OBJECT_ID the object id the plan names)`,
      );
    const [, name, objectId] = match as unknown as [string, string, string];
    if (confirm[name] !== undefined) throw new UsageError(`--confirm: partner ${name} is given twice`);
    confirm[name] = objectId.toLowerCase();
  }
  return confirm;
}

function required(value: string | undefined, option: string): string {
  if (value === undefined || value.trim() === '') throw new UsageError(`${option} is required`);
  return value.trim();
}

function optionalHttpsUrl(value: string | undefined, option: string): string | undefined {
  if (value === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`${option}: "${value}" is not a URL`);
  }
  if (url.protocol !== 'https:') throw new UsageError(`${option}: "${value}" must be an https:// URL`);
  if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '')
    throw new UsageError(`${option}: "${value}" must have no query, fragment or credentials`);
  return url.href.replace(/\/+$/, '');
}

/** The CA certificates to trust, as PEM; a file with anything else in it is refused. */
function readCaFile(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--ca-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  if (/PRIVATE KEY-----/.test(pem))
    throw new UsageError(`--ca-file: ${file} holds a private key; give the CA's certificate only`);
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new UsageError(`--ca-file: ${file} holds no PEM certificate`);
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch {
      throw new UsageError(`--ca-file: ${file} holds a damaged certificate`);
    }
  }
  return blocks.join('\n') + '\n';
}
