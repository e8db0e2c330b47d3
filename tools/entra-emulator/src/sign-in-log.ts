/**
 * The tenant's service-principal sign-in log: every token request the token endpoint processed,
 * kept in memory in a ring buffer of SIGN_IN_LOG_CAPACITY entries (the oldest entry makes room
 * for the newest), and shown as Microsoft Graph beta's `signIn` resource (graph-beta.ts).
 *
 * Only identifiers are kept: app ids, object ids, key ids, thumbprints, addresses and Entra's
 * error text. A token, an assertion, a secret or a key is never handed to the log.
 */
import { newGuid } from './ids';

/**
 * The bound: enough for a long test run or the tail of a load test (the newest 10,000 token
 * requests), while a busy emulator's log stays a few megabytes however long it runs.
 */
export const SIGN_IN_LOG_CAPACITY = 10_000;

/**
 * The longest text an entry keeps per field, so an entry stays well under 4 KB whatever a
 * client sends: `failureReason` and `additionalDetails` 1,000 characters, every other field
 * (names, ids, addresses, thumbprints) 256. Longer text is cut and ends with `…`.
 */
export const SIGN_IN_TEXT_LIMIT = { reason: 1000, field: 256 } as const;

export type ClientCredentialType = 'certificate' | 'clientSecret' | 'none';

/** What the recorder is told about one sign-in. */
export interface SignInAttempt {
  appId?: string;
  appDisplayName?: string;
  servicePrincipalId?: string;
  /** The resource's service principal object id. */
  resourceId?: string;
  resourceDisplayName?: string;
  resourceAppId?: string;
  ipAddress: string;
  clientCredentialType: ClientCredentialType;
  /** SHA-1 hex, upper case, as Graph shows it (SHA-256 hex when the client named only that). */
  thumbprint?: string;
  keyId?: string;
  /** 0 = success, else the AADSTS number. */
  errorCode: number;
  failureReason?: string;
  additionalDetails?: string;
  correlationId?: string;
  /** The token service's request id for this request (`x-ms-request-id`). */
  requestId?: string;
  processingTimeMs?: number;
  /** A test token from /admin/testTokens, not issued by the token endpoint. */
  minted?: boolean;
}

export interface SignInRecord {
  /** Increases with every record: pages of the Graph list continue after one. */
  readonly seq: number;
  readonly id: string;
  /** When the sign-in began, in epoch milliseconds (Graph's createdDateTime). */
  readonly at: number;
  readonly attempt: Readonly<SignInAttempt>;
}

export interface SignInLogOptions {
  capacity: number;
  now: () => Date;
  /** Told about every record, and whether it pushed the oldest one out. */
  onRecord?: (record: SignInRecord, dropped: boolean) => void;
}

export class SignInLog {
  readonly capacity: number;
  private readonly entries: (SignInRecord | undefined)[];
  private next = 0;
  private count = 0;
  private droppedCount = 0;
  private seq = 0;

  constructor(private readonly options: SignInLogOptions) {
    if (!Number.isInteger(options.capacity) || options.capacity < 1)
      throw new RangeError(`sign-in log capacity must be a positive integer, not ${options.capacity}`);
    this.capacity = options.capacity;
    this.entries = new Array<SignInRecord | undefined>(options.capacity);
  }

  /** Records one sign-in, at `at` (the time its request began) or now. */
  record(attempt: SignInAttempt, at: Date = this.options.now()): SignInRecord {
    const record: SignInRecord = Object.freeze({
      seq: ++this.seq,
      id: newGuid(),
      at: at.getTime(),
      attempt: Object.freeze(bounded(attempt)),
    });
    const dropped = this.count === this.capacity;
    this.entries[this.next] = record;
    this.next = (this.next + 1) % this.capacity;
    if (dropped) this.droppedCount++;
    else this.count++;
    this.options.onRecord?.(record, dropped);
    return record;
  }

  /**
   * Newest arrival first: createdDateTime order until the clock is moved back, after which later
   * arrivals carry earlier times and still come first. Paging ($skiptoken) relies on this order.
   */
  *newestFirst(): Generator<SignInRecord> {
    for (let i = 1; i <= this.count; i++)
      yield this.entries[(this.next - i + this.capacity) % this.capacity]!;
  }

  get size(): number {
    return this.count;
  }

  /** Entries pushed out by newer ones since start. */
  get dropped(): number {
    return this.droppedCount;
  }
}

/** A copy of the attempt whose every text field is within SIGN_IN_TEXT_LIMIT. */
function bounded(attempt: SignInAttempt): SignInAttempt {
  const copy: Record<string, unknown> = { ...attempt };
  for (const [name, value] of Object.entries(copy)) {
    if (typeof value !== 'string') continue;
    const limit =
      name === 'failureReason' || name === 'additionalDetails'
        ? SIGN_IN_TEXT_LIMIT.reason
        : SIGN_IN_TEXT_LIMIT.field;
    if (value.length > limit) copy[name] = `${value.slice(0, limit - 1)}…`;
  }
  return copy as unknown as SignInAttempt;
}

/** A token request's sign-in, filled in as the request is processed and recorded once at its end. */
export class SignInDraft {
  private readonly attempt: SignInAttempt;
  private readonly at: Date;
  private readonly startedNs: bigint;
  private done = false;

  constructor(
    private readonly log: SignInLog,
    start: { ipAddress: string; correlationId: string; requestId: string; at: Date; startedNs: bigint },
  ) {
    this.at = start.at;
    this.startedNs = start.startedNs;
    this.attempt = {
      ipAddress: start.ipAddress,
      correlationId: start.correlationId,
      requestId: start.requestId,
      clientCredentialType: 'none',
      errorCode: 0,
    };
  }

  client(client: { appId: string; displayName: string; servicePrincipalId: string }): void {
    this.attempt.appId = client.appId;
    this.attempt.appDisplayName = client.displayName;
    this.attempt.servicePrincipalId = client.servicePrincipalId;
  }

  credential(credential: { type: ClientCredentialType; thumbprint?: string; keyId?: string }): void {
    this.attempt.clientCredentialType = credential.type;
    if (credential.thumbprint !== undefined) this.attempt.thumbprint = credential.thumbprint;
    if (credential.keyId !== undefined) this.attempt.keyId = credential.keyId;
  }

  resource(resource: { appId: string; servicePrincipalId: string; displayName: string }): void {
    this.attempt.resourceAppId = resource.appId;
    this.attempt.resourceId = resource.servicePrincipalId;
    this.attempt.resourceDisplayName = resource.displayName;
  }

  /** Records the outcome (0 = success); only the first call counts. */
  finish(errorCode: number, failureReason?: string): void {
    if (this.done) return;
    this.done = true;
    this.attempt.errorCode = errorCode;
    this.attempt.processingTimeMs = Math.round(Number(process.hrtime.bigint() - this.startedNs) / 1e6);
    if (failureReason) this.attempt.failureReason = failureReason;
    this.log.record(this.attempt, this.at);
  }
}

/** The client's address as the socket saw it (never a forwarding header); IPv4 without its `::ffff:` prefix. */
export function clientAddress(remoteAddress: string | undefined): string {
  if (!remoteAddress) return '';
  return remoteAddress.startsWith('::ffff:') && remoteAddress.includes('.')
    ? remoteAddress.slice(7)
    : remoteAddress;
}

const MINTED_DETAILS =
  'A test token minted through the emulator admin API (/admin/testTokens); the token endpoint did not issue it.';

/** A minted token's `status.additionalDetails`, naming the application that minted it. */
export function mintedDetails(mintedByAppId: string | undefined): string {
  return mintedByAppId === undefined ? MINTED_DETAILS : `${MINTED_DETAILS} Minted by ${mintedByAppId}.`;
}

/** Every entry's `signInEventTypes`: the log holds service-principal sign-ins only. */
export const SIGN_IN_EVENT_TYPES: readonly string[] = ['servicePrincipal'];

/** A record as Microsoft Graph beta's `signIn` resource. */
export function signInView(record: SignInRecord, tenantId: string): Record<string, unknown> {
  const a = record.attempt;
  return {
    id: record.id,
    createdDateTime: new Date(record.at).toISOString(),
    appId: a.appId ?? '',
    appDisplayName: a.appDisplayName ?? '',
    servicePrincipalId: a.servicePrincipalId ?? '',
    servicePrincipalName: a.appDisplayName ?? '',
    // Graph's resourceId is the resource's app id; its service principal is resourceServicePrincipalId.
    resourceId: a.resourceAppId ?? '',
    resourceDisplayName: a.resourceDisplayName ?? '',
    resourceServicePrincipalId: a.resourceId ?? '',
    resourceTenantId: tenantId,
    ipAddress: a.ipAddress,
    clientCredentialType: a.clientCredentialType,
    servicePrincipalCredentialThumbprint: a.thumbprint ?? '',
    servicePrincipalCredentialKeyId: a.keyId ?? '',
    signInEventTypes: [...SIGN_IN_EVENT_TYPES],
    isInteractive: false,
    correlationId: a.correlationId ?? '',
    originalRequestId: a.requestId ?? '',
    processingTimeInMilliseconds: a.processingTimeMs ?? 0,
    conditionalAccessStatus: 'notApplied',
    tokenIssuerType: 'AzureAD',
    status: {
      errorCode: a.errorCode,
      failureReason: a.errorCode === 0 ? null : (a.failureReason ?? null),
      additionalDetails: a.additionalDetails ?? (a.minted ? MINTED_DETAILS : null),
    },
  };
}

/**
 * The text properties of a `signIn` that `$filter` compares, read from the record itself so a
 * query builds views only for the entries it answers. Each gives what signInView shows.
 */
export const SIGN_IN_TEXT_PROPERTIES: Readonly<Record<string, (record: SignInRecord) => string>> = {
  id: (r) => r.id,
  appId: (r) => r.attempt.appId ?? '',
  appDisplayName: (r) => r.attempt.appDisplayName ?? '',
  correlationId: (r) => r.attempt.correlationId ?? '',
  ipAddress: (r) => r.attempt.ipAddress,
  resourceDisplayName: (r) => r.attempt.resourceDisplayName ?? '',
  resourceId: (r) => r.attempt.resourceAppId ?? '',
  servicePrincipalId: (r) => r.attempt.servicePrincipalId ?? '',
  servicePrincipalName: (r) => r.attempt.appDisplayName ?? '',
};

/** Every top-level property of the `signIn` view (what `$select` may name). */
export const SIGN_IN_PROPERTIES: readonly string[] = Object.keys(
  signInView(
    { seq: 0, id: '', at: 0, attempt: { ipAddress: '', clientCredentialType: 'none', errorCode: 0 } },
    '',
  ),
);
