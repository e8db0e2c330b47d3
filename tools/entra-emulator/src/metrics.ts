/**
 * Prometheus metrics for the token endpoint, served at `GET /metrics` through prom-client, in a
 * registry of this emulator's own (two emulators in one process count separately):
 *
 * - `entra_emulator_token_requests_total{client_id,outcome,error_code}`: every token request;
 *   `outcome` is `success`, `error` (an Entra error, `error_code` = its AADSTS number) or
 *   `fault` (injected); `client_id` is the app id of a registered client, else `unknown`
 *   (so that junk client ids cannot grow the label set).
 * - `entra_emulator_tokens_issued_total{client_id,resource,credential,token_version}`: tokens issued,
 *   by credential (`certificate` or `secret`) and access-token version.
 * - `entra_emulator_token_request_duration_seconds{outcome}`: latency histogram, including
 *   injected latency.
 * - `entra_emulator_signing_key_rotations_total`.
 * - `entra_emulator_sign_ins_total{result}`: sign-in log records, `result` = `success`,
 *   `failure` or `minted` (a test token); `entra_emulator_sign_in_log_entries`: the log's size
 *   now; `entra_emulator_sign_in_log_dropped_total`: records pushed out by newer ones.
 */
import { Counter, Gauge, Histogram, LATENCY_BUCKETS_SECONDS, Registry } from '@certflow/observability';

export type TokenOutcome = 'success' | 'error' | 'fault';

export class Metrics {
  private readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'entra_emulator_token_requests_total',
    help: 'Token endpoint requests by client, outcome and AADSTS error code.',
    labelNames: ['client_id', 'outcome', 'error_code'] as const,
    registers: [this.registry],
  });
  private readonly issued = new Counter({
    name: 'entra_emulator_tokens_issued_total',
    help: 'Access tokens issued, by client, resource app id, credential type and token version.',
    labelNames: ['client_id', 'resource', 'credential', 'token_version'] as const,
    registers: [this.registry],
  });
  private readonly latency = new Histogram({
    name: 'entra_emulator_token_request_duration_seconds',
    help: 'Token endpoint latency, from request to response.',
    labelNames: ['outcome'] as const,
    buckets: LATENCY_BUCKETS_SECONDS,
    registers: [this.registry],
  });
  private readonly rotations = new Counter({
    name: 'entra_emulator_signing_key_rotations_total',
    help: 'Token-signing key rotations since start.',
    registers: [this.registry],
  });

  private readonly signIns = new Counter({
    name: 'entra_emulator_sign_ins_total',
    help: 'Sign-in log records, by result (success, failure, minted).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private readonly signInLogEntries = new Gauge({
    name: 'entra_emulator_sign_in_log_entries',
    help: 'Entries in the sign-in log now (it keeps the newest ones up to its capacity).',
    registers: [this.registry],
  });
  private readonly signInLogDropped = new Counter({
    name: 'entra_emulator_sign_in_log_dropped_total',
    help: 'Sign-in log entries pushed out by newer ones.',
    registers: [this.registry],
  });

  signInRecorded(result: 'success' | 'failure' | 'minted', logSize: number, dropped: boolean): void {
    this.signIns.inc({ result });
    this.signInLogEntries.set(logSize);
    if (dropped) this.signInLogDropped.inc();
  }

  tokenRequest(
    clientId: string | undefined,
    outcome: TokenOutcome,
    errorCode: number | undefined,
    seconds: number,
  ): void {
    this.requests.inc({
      client_id: clientId ?? 'unknown',
      outcome,
      error_code: errorCode === undefined ? '' : errorCode,
    });
    this.latency.observe({ outcome }, seconds);
  }

  tokenIssued(issued: {
    clientAppId: string;
    resourceAppId: string;
    credential: 'certificate' | 'secret';
    tokenVersion: 1 | 2;
  }): void {
    this.issued.inc({
      client_id: issued.clientAppId,
      resource: issued.resourceAppId,
      credential: issued.credential,
      token_version: issued.tokenVersion,
    });
  }

  signingKeyRotated(): void {
    this.rotations.inc();
  }

  /** The text exposition format (0.0.4), served with `PROMETHEUS_CONTENT_TYPE`. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
