/**
 * A Microsoft Graph token from @azure/identity, the way the person running `provision` signs in:
 * the Azure CLI, a device code, or DefaultAzureCredential (environment, workload or managed
 * identity, …). A custom authority host (a sovereign cloud, the local emulator) and an extra CA
 * are passed to the credential itself, never through process-wide settings.
 */
import { rootCertificates } from 'node:tls';
import {
  AzureAuthorityHosts,
  AzureCliCredential,
  DefaultAzureCredential,
  DeviceCodeCredential,
  type AccessToken,
  type TokenCredential,
} from '@azure/identity';
import type { ProvisionOptions } from './options';

export const GRAPH_SCOPE = 'https://graph.microsoft.com/.default';
/** Ask for a new token this long before the current one expires. */
const RENEW_BEFORE_MS = 2 * 60_000;

/** Sign-in failed or was refused: exit code 1 with this message. */
export class SignInError extends Error {
  override readonly name = 'SignInError';
}

export function createCredential(
  options: Pick<ProvisionOptions, 'credential' | 'tenant' | 'clientId' | 'authorityHost' | 'ca'>,
  prompt: (message: string) => void,
): TokenCredential {
  const knownCloud = Object.values(AzureAuthorityHosts).some(
    (host) => host.replace(/\/+$/, '') === options.authorityHost,
  );
  const common = {
    tenantId: options.tenant,
    // Always explicit, so that AZURE_AUTHORITY_HOST cannot point sign-in elsewhere than --authority-host.
    authorityHost: options.authorityHost,
    disableInstanceDiscovery: !knownCloud,
    // `ca` replaces Node's trusted roots for these requests, so the public ones are kept.
    ...(options.ca === undefined ? {} : { tlsOptions: { ca: [...rootCertificates, options.ca] } }),
  };
  switch (options.credential) {
    case 'cli':
      return new AzureCliCredential({ tenantId: options.tenant });
    case 'device-code':
      return new DeviceCodeCredential({
        ...common,
        ...(options.clientId === undefined ? {} : { clientId: options.clientId }),
        userPromptCallback: (info) => prompt(info.message),
      });
    case 'default':
      return new DefaultAzureCredential(common);
  }
}

export interface SignedIn {
  /** The tenant GUID the token was issued in (`tid`). */
  tenantId: string;
  /** Who signed in: `user <upn>` or `application <client id>`. */
  identity: string;
  /** Bearer token for Microsoft Graph, renewed before it expires. */
  token: () => Promise<string>;
}

/**
 * Gets a first token (so that a sign-in problem stops the run before any Graph call) and checks
 * it was issued in the tenant asked for: `tenantId` is the GUID, `tenant` how --tenant gave it.
 * Later calls reuse the token until shortly before it expires: AzureCliCredential starts `az`
 * for every request, so the token is cached here for all.
 */
export async function signIn(
  credential: TokenCredential,
  tenant: { tenantId: string; given: string },
  kind: string,
): Promise<SignedIn> {
  let current = await acquire(credential, kind);
  const claims = decodeClaims(current.token);
  const tenantId = typeof claims.tid === 'string' ? claims.tid : undefined;
  if (tenantId === undefined) throw new SignInError('the Microsoft Graph token carries no tenant (tid)');
  if (tenant.tenantId.toLowerCase() !== tenantId.toLowerCase()) {
    const wanted =
      tenant.given.toLowerCase() === tenant.tenantId.toLowerCase()
        ? tenant.tenantId
        : `${tenant.tenantId} (${tenant.given})`;
    throw new SignInError(
      `--credential ${kind} signed in to tenant ${tenantId}, not ${wanted} (check AZURE_TENANT_ID or az account)`,
    );
  }
  const user = [claims.upn, claims.unique_name].find((v): v is string => typeof v === 'string');
  const app = [claims.appid, claims.azp].find((v): v is string => typeof v === 'string');
  const identity = user !== undefined ? `user ${user}` : app !== undefined ? `application ${app}` : undefined;
  return {
    tenantId,
    identity: identity ?? 'unknown identity',
    token: async () => {
      if (current.expiresOnTimestamp - Date.now() < RENEW_BEFORE_MS)
        current = await acquire(credential, kind);
      return current.token;
    },
  };
}

async function acquire(credential: TokenCredential, kind: string): Promise<AccessToken> {
  let token: AccessToken | null;
  try {
    token = await credential.getToken(GRAPH_SCOPE);
  } catch (err) {
    throw new SignInError(`--credential ${kind}: no token for Microsoft Graph: ${(err as Error).message}`);
  }
  if (!token) throw new SignInError(`--credential ${kind}: no token for Microsoft Graph`);
  return token;
}

function decodeClaims(token: string): Record<string, unknown> {
  try {
    const payload: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    if (typeof payload === 'object' && payload !== null) return payload as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new SignInError('the Microsoft Graph token is not a JWT');
}
