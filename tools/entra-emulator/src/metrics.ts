/**
 * Prometheus metrics for the token endpoint, served at `GET /metrics` (text format 0.0.4):
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
 */
export type TokenOutcome = 'success' | 'error' | 'fault';

export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly issued = new Map<string, number>();
  private readonly latency = new Map<TokenOutcome, Histogram>();
  private rotations = 0;

  tokenRequest(
    clientId: string | undefined,
    outcome: TokenOutcome,
    errorCode: number | undefined,
    seconds: number,
  ): void {
    const key = labels({
      client_id: clientId ?? 'unknown',
      outcome,
      error_code: errorCode === undefined ? '' : String(errorCode),
    });
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let histogram = this.latency.get(outcome);
    if (!histogram) {
      histogram = { buckets: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.latency.set(outcome, histogram);
    }
    LATENCY_BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) histogram.buckets[i]! += 1;
    });
    histogram.sum += seconds;
    histogram.count += 1;
  }

  tokenIssued(issued: {
    clientAppId: string;
    resourceAppId: string;
    credential: 'certificate' | 'secret';
    tokenVersion: 1 | 2;
  }): void {
    const key = labels({
      client_id: issued.clientAppId,
      resource: issued.resourceAppId,
      credential: issued.credential,
      token_version: String(issued.tokenVersion),
    });
    this.issued.set(key, (this.issued.get(key) ?? 0) + 1);
  }

  signingKeyRotated(): void {
    this.rotations += 1;
  }

  render(): string {
    const lines: string[] = [];
    lines.push(
      '# HELP entra_emulator_token_requests_total Token endpoint requests by client, outcome and AADSTS error code.',
    );
    lines.push('# TYPE entra_emulator_token_requests_total counter');
    for (const [key, value] of this.requests)
      lines.push(`entra_emulator_token_requests_total{${key}} ${value}`);
    lines.push(
      '# HELP entra_emulator_tokens_issued_total Access tokens issued, by client, resource app id, credential type and token version.',
    );
    lines.push('# TYPE entra_emulator_tokens_issued_total counter');
    for (const [key, value] of this.issued) lines.push(`entra_emulator_tokens_issued_total{${key}} ${value}`);
    lines.push(
      '# HELP entra_emulator_token_request_duration_seconds Token endpoint latency, from request to response.',
    );
    lines.push('# TYPE entra_emulator_token_request_duration_seconds histogram');
    for (const [outcome, h] of this.latency) {
      LATENCY_BUCKETS.forEach((bound, i) =>
        lines.push(
          `entra_emulator_token_request_duration_seconds_bucket{outcome="${outcome}",le="${bound}"} ${h.buckets[i]}`,
        ),
      );
      lines.push(
        `entra_emulator_token_request_duration_seconds_bucket{outcome="${outcome}",le="+Inf"} ${h.count}`,
      );
      lines.push(`entra_emulator_token_request_duration_seconds_sum{outcome="${outcome}"} ${h.sum}`);
      lines.push(`entra_emulator_token_request_duration_seconds_count{outcome="${outcome}"} ${h.count}`);
    }
    lines.push('# HELP entra_emulator_signing_key_rotations_total Token-signing key rotations since start.');
    lines.push('# TYPE entra_emulator_signing_key_rotations_total counter');
    lines.push(`entra_emulator_signing_key_rotations_total ${this.rotations}`);
    return `${lines.join('\n')}\n`;
  }
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function labels(values: Record<string, string>): string {
  return Object.entries(values)
    .map(
      ([name, value]) =>
        `${name}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
    )
    .join(',');
}
