/**
 * The partner worker's `serve` facade as a separate process (as a partner runs it), configured
 * for the running stack, and the emulator's own count of the tokens it issued to the partner:
 * the ground truth for "one token request per token lifetime", independent of the worker's
 * claims about itself.
 */
import { request } from 'node:https';
import {
  appEntryPoint,
  servedApi,
  stackPartner,
  stackPartnerEnvironment,
  startService,
  type ChildService,
  type StackFile,
} from '@certflow/stack';

export function partnerWorkerEnvironment(
  file: StackFile,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return { ...process.env, ...stackPartnerEnvironment(file), ...extra };
}

/** Starts `partner-worker serve` on a free loopback port; resolves once it listens. */
export function startPartnerFacade(
  file: StackFile,
  label: string,
  extra: Record<string, string> = {},
): Promise<ChildService> {
  return startService(
    `partner facade ${label}`,
    appEntryPoint('partner-worker'),
    ['serve', '--port', '0'],
    partnerWorkerEnvironment(file, extra),
  );
}

function getText(url: string, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () =>
        res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${url}: HTTP ${res.statusCode}`)),
      );
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Sum of a Prometheus metric's samples (labelled or not) whose labels include every one of `match`. */
export function counterSum(metricsText: string, metric: string, match: Record<string, string> = {}): number {
  const wanted = Object.entries(match).map(([k, v]) => `${k}="${v}"`);
  let total = 0;
  for (const line of metricsText.split('\n')) {
    if (line.startsWith(`${metric} `)) {
      if (wanted.length === 0) total += Number(line.slice(metric.length + 1).trim());
      continue;
    }
    if (!line.startsWith(`${metric}{`)) continue;
    const close = line.lastIndexOf('}');
    const labels = line.slice(metric.length + 1, close).split(',');
    if (wanted.every((w) => labels.includes(w))) total += Number(line.slice(close + 1).trim());
  }
  return total;
}

/** Access tokens for the served API the emulator has issued to the stack's first partner since it started (Graph tokens not counted). */
export async function tokensIssuedToPartner(file: StackFile, ca: Buffer): Promise<number> {
  const text = await getText(`${file.emulator.url}/metrics`, ca);
  return counterSum(text, 'entra_emulator_tokens_issued_total', {
    client_id: stackPartner(file).appId,
    resource: servedApi(file).appId,
  });
}
