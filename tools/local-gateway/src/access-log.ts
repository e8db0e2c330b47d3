/**
 * One JSON line per request. Built from an allow-list of fields: no request headers and no
 * query string are ever logged, so neither the Authorization header nor a token passed as a
 * query parameter can end up in the log.
 */

/** What the policy pipeline decided. */
export type PolicyOutcome =
  /** health probe: no policy runs */
  | 'none'
  /** inbound passed, the request was forwarded */
  | 'forwarded'
  /** a policy failed (validate-jwt …): the caller got an error */
  | 'rejected'
  /** return-response answered */
  | 'returned'
  /** the gateway itself refused the request (body too large) or the backend failed */
  | 'gateway-error';

export interface AccessLogEntry {
  event: 'request';
  time: string;
  method: string;
  /** The normalized path (request-target.ts), without the query string (it may carry a token); '' when the request could not be parsed. */
  path: string;
  status: number;
  durationMs: number;
  policy: PolicyOutcome;
  /** The X-AppGW-Trace-Id the backend received with this request (when it was forwarded). */
  traceId?: string;
  /** `LastError.Source` / `Reason` when something failed, e.g. validate-jwt / TokenExpired. */
  errorSource?: string;
  errorReason?: string;
  /** true when the client went away before the response was complete. */
  aborted?: boolean;
}

export type AccessLogSink = (entry: AccessLogEntry) => void;

export const stdoutAccessLog: AccessLogSink = (entry) => {
  process.stdout.write(`${JSON.stringify(entry)}\n`);
};
