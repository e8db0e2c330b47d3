/** `serve`: the HTTP facade over one PartnerWorker, for load tests. */
import { isLoopbackAddress } from '@certflow/loopback-guard';
import { readPartnerConfig, readRotationConfig, rotateWithGraph } from '@certflow/partner-client';
import { startFacade } from '../facade';
import { PartnerWorker } from '../worker';
import {
  ALLOWED_HOST_OPTION,
  allowedHosts,
  command,
  logTo,
  portNumber,
  stopped,
  UsageError,
} from './command';

/** Logs (and says) whether the certificate expires within PARTNER_CERT_EXPIRY_WARNING_DAYS. */
export function warnIfExpiring(worker: PartnerWorker, log: (m: string) => void): boolean {
  const status = worker.certificateStatus();
  if (status.expiring)
    log(
      `warning: the certificate expires in ${status.daysUntilExpiry} days (${status.notAfter}); rotate it soon (warning threshold PARTNER_CERT_EXPIRY_WARNING_DAYS)`,
    );
  return status.expiring;
}

export const serve = command({
  name: 'serve',
  usage: `  serve [--port N] [--host H] [--allowed-host NAME]
                      HTTP facade for load tests: GET /call/<path>, /metrics, /health, POST /rotate;
                      prints {"event":"listening","url":"http://H:PORT"} once listening`,
  help: `Usage: partner-worker serve [--port N] [--host H] [--allowed-host NAME]

A small HTTP facade for load tests. Once listening it prints exactly one line on stdout:
  {"event":"listening","url":"http://127.0.0.1:PORT"}
Logs go to stderr. Routes:
  GET  /call/<api path and query>  a token from certflow's cache (and the shared Redis tier with
                                    PARTNER_REDIS_URL), then GET PARTNER_API_BASE_URL + path;
                                    answers with the upstream status and body. No answer:
                                    502 {"error":"token_unavailable"|"upstream_failed","reason":…},
                                    504 {"error":"upstream_timeout","reason":…}; 400 invalid_path
  GET  /metrics                    Prometheus text: token cache hits/misses, token requests,
                                    refreshes, shared hits/fallbacks, calls by outcome and status,
                                    call latency, certificate days until expiry and expiring gauge
  GET  /health                     {"status":"ok","certificate":{…}}
  POST /rotate                     loopback clients only: rotate the certificate in process
                                    (needs PARTNER_APP_OBJECT_ID), switch without a restart
  anything else                    404 {"error":"not_found"}
Every route answers only to its own origin, so that no web page can use it (DNS rebinding,
cross-site requests): a Host other than localhost, 127.0.0.1, [::1] (with the port) or an
--allowed-host name gets 421 {"error":"misdirected_request"}; an Origin other than the facade's
own, or Sec-Fetch-Site cross-site/same-site, gets 403 {"error":"forbidden"}. Nothing is called.
A certificate rotated by another process (cert rotate) is picked up from PARTNER_CERT_DIR without
a restart; damaged or half-written files are ignored with a log line. SIGTERM/SIGINT: graceful stop.

Options:
  --port N   0 to 65535 (default 0: any free port)
  --host H   address to listen on (default 127.0.0.1)
  --allowed-host NAME  another Host name to answer to (repeatable; also PARTNER_ALLOWED_HOSTS,
             comma-separated). On a non-loopback --host without any, the Host name is not checked.
Needs PARTNER_TENANT_ID, PARTNER_CLIENT_ID, PARTNER_SCOPE, PARTNER_API_BASE_URL (see help).`,
  options: { port: { type: 'string' }, host: { type: 'string' }, ...ALLOWED_HOST_OPTION },
  async run({ io, values, clock }) {
    const port = portNumber('port', values.port);
    const host = values.host ?? '127.0.0.1';
    if (host.trim() === '' || /\s/.test(host))
      throw new UsageError(`--host must be an address, got "${host}"`);
    const names = allowedHosts(io, values['allowed-host']);
    const config = readPartnerConfig(io.env, io.cwd);
    // Checked at start-up too: POST /rotate is on only when PARTNER_APP_OBJECT_ID is set (and valid).
    const rotationConfig = io.env['PARTNER_APP_OBJECT_ID']?.trim()
      ? readRotationConfig(io.env, io.cwd)
      : undefined;
    const log = logTo(io);
    if (!isLoopbackAddress(host))
      log(
        `warning: serving on ${host}, not loopback: anyone who can reach it calls the API as this partner through GET /call (POST /rotate stays loopback-only)`,
      );
    const worker = new PartnerWorker({ config, log, clock });
    try {
      warnIfExpiring(worker, log);
      const facade = await startFacade({
        worker,
        host,
        port,
        allowedHosts: names,
        log,
        ...(rotationConfig
          ? {
              rotate: () =>
                rotateWithGraph(rotationConfig, worker.store, worker.credential, {
                  onSwitch: (next) => worker.switchCredential(next),
                  log,
                }),
            }
          : {
              rotateUnavailableReason:
                'set PARTNER_APP_OBJECT_ID (and PARTNER_GRAPH_URL) to rotate in process',
            }),
      });
      io.stdout(JSON.stringify({ event: 'listening', url: facade.url }));
      await stopped(io.stop);
      log('stopping: finishing the requests in progress');
      await facade.close(5_000);
      log('stopped');
      return 0;
    } finally {
      worker.close();
    }
  },
});
