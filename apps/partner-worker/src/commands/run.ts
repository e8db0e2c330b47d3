/** `run`: the long-running worker, calling one API path on an interval. */
import { startTrace } from '@certflow/observability';
import { readPartnerConfig } from '@certflow/partner-client';
import { redact, startFacade, type RunningFacade } from '../facade';
import { PartnerWorker } from '../worker';
import {
  ALLOWED_HOST_OPTION,
  allowedHosts,
  command,
  logTo,
  portNumber,
  positiveInt,
  stopped,
  UsageError,
} from './command';
import { warnIfExpiring } from './serve';

export const run = command({
  name: 'run',
  usage: `  run --path P [--interval-ms N] [--times N] [--metrics-port N] [--allowed-host NAME]
                      the long-running worker: calls the API path every N ms, JSON lines on stdout`,
  help: `Usage: partner-worker run --path P [--interval-ms N] [--times N] [--metrics-port N]
                           [--allowed-host NAME]

The long-running worker: GET PARTNER_API_BASE_URL + P every N ms (default 10000) until stopped
(SIGTERM/SIGINT) or --times calls were made. One JSON object per line on stdout:
  {"event":"started","path":…,"intervalMs":…,"certificate":{…}}
  {"event":"warning","reason":"certificate-expiring","daysUntilExpiry":…,"notAfter":…}
  {"event":"response","n":1,"status":200,"ms":12.3}
  {"event":"call-failed","n":2,"reason":…}
  {"event":"certificate-switched","certificate":{…}}
  {"event":"stopped","calls":…,"failed":…}
It refuses to start with an expired certificate, and warns (stderr, event, metric) when fewer than
PARTNER_CERT_EXPIRY_WARNING_DAYS (default 30) days are left. A certificate rotated by another
process is picked up without a restart. With --metrics-port it also serves GET /metrics and
GET /health on 127.0.0.1, checking Host and Origin as serve does (--allowed-host,
PARTNER_ALLOWED_HOSTS). Exit status 0 when every call answered 2xx, 1 otherwise.`,
  options: {
    path: { type: 'string' },
    'interval-ms': { type: 'string' },
    times: { type: 'string' },
    'metrics-port': { type: 'string' },
    ...ALLOWED_HOST_OPTION,
  },
  async run({ io, values, emit, clock }) {
    const path = values.path;
    if (path === undefined) throw new UsageError('run needs --path, e.g. run --path /orders');
    if (!path.startsWith('/')) throw new UsageError(`--path must start with "/", got "${path}"`);
    const intervalMs =
      values['interval-ms'] === undefined
        ? 10_000
        : positiveInt('interval-ms', values['interval-ms'], 10_000, 86_400_000);
    const times =
      values.times === undefined ? Infinity : positiveInt('times', values.times, 1, 1_000_000_000);
    const metricsPort =
      values['metrics-port'] === undefined ? undefined : portNumber('metrics-port', values['metrics-port']);
    if (values['allowed-host'] !== undefined && metricsPort === undefined)
      throw new UsageError('--allowed-host applies to --metrics-port: give both or neither');
    const names = allowedHosts(io, values['allowed-host']);
    const config = readPartnerConfig(io.env, io.cwd);
    const log = logTo(io);
    const worker = new PartnerWorker({
      config,
      log,
      clock,
      onCertificateSwitched: () =>
        emit({ event: 'certificate-switched', certificate: { ...worker.certificateStatus() } }),
    });
    let facade: RunningFacade | undefined;
    let calls = 0;
    let failed = 0;
    try {
      worker.api.urlFor(path); // a path that leaves the API base URL is refused before any call
      emit({
        event: 'started',
        path,
        intervalMs,
        ...(Number.isFinite(times) ? { times } : {}),
        certificate: { ...worker.certificateStatus() },
      });
      if (metricsPort !== undefined) {
        facade = await startFacade({
          worker,
          port: metricsPort,
          routes: 'observability',
          allowedHosts: names,
          log,
        });
        emit({ event: 'metrics', url: facade.url });
      }
      let warned = false;
      const stop = stopped(io.stop);
      let stopping = false;
      void stop.then(() => (stopping = true));
      while (!stopping && calls < times) {
        if (!warned && warnIfExpiring(worker, log)) {
          const status = worker.certificateStatus();
          emit({
            event: 'warning',
            reason: 'certificate-expiring',
            daysUntilExpiry: status.daysUntilExpiry,
            notAfter: status.notAfter,
          });
          warned = true;
        }
        calls++;
        const trace = startTrace();
        const ids = { traceId: trace.traceId, spanId: trace.spanId };
        try {
          const answer = await worker.call(path, trace);
          emit({
            event: 'response',
            n: calls,
            status: answer.status,
            ms: Math.round(answer.seconds * 10_000) / 10,
            ...ids,
          });
          if (answer.status < 200 || answer.status >= 300) failed++;
        } catch (err) {
          failed++;
          emit({ event: 'call-failed', n: calls, reason: redact((err as Error).message), ...ids });
        }
        if (calls >= times || stopping) break;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([stop, new Promise<void>((r) => (timer = setTimeout(r, intervalMs)))]);
        clearTimeout(timer);
      }
      emit({ event: 'stopped', calls, failed });
      return failed === 0 ? 0 : 1;
    } finally {
      await facade?.close(1_000);
      worker.close();
    }
  },
});
