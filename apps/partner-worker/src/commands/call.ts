/** `call <path>`: authenticated GETs through the resilient client, each with a new trace. */
import { startTrace } from '@certflow/observability';
import { ApiClient, readPartnerConfig } from '@certflow/partner-client';
import { command, JSON_OPTION, positiveInt, UsageError } from './command';
import { openSession } from './token';

export const call = command({
  name: 'call',
  usage: `  call <path> [--times N] [--json]
                      call the API at PARTNER_API_BASE_URL + path with a bearer token, N times`,
  options: { ...JSON_OPTION, times: { type: 'string' } },
  args: 1,
  async run({ io, values, args: [path], emit }) {
    if (path === undefined) throw new UsageError('call needs a path, e.g. call /orders');
    if (!path.startsWith('/')) throw new UsageError(`the path must start with "/", got "${path}"`);
    const times = positiveInt('times', values.times, 1, 10_000);
    const config = readPartnerConfig(io.env, io.cwd);
    const session = openSession(io, config, values.json, emit);
    const api = new ApiClient({
      baseUrl: config.apiBaseUrl,
      tokens: session.tokens,
      ...(config.caPem ? { ca: config.caPem } : {}),
    });
    try {
      for (let i = 1; i <= times; i++) {
        const trace = startTrace();
        const response = await api.get(path, trace);
        if (values.json)
          emit({
            event: 'response',
            status: response.status,
            body: response.body,
            traceId: trace.traceId,
            spanId: trace.spanId,
          });
        else
          io.stdout(
            `HTTP ${response.status}\n${typeof response.body === 'string' ? response.body : JSON.stringify(response.body, null, 2)}`,
          );
        if (response.status < 200 || response.status >= 300) {
          io.stderr(
            `partner-worker: error: GET ${path} answered HTTP ${response.status}${times > 1 ? ` (call ${i} of ${times})` : ''} (traceId ${trace.traceId})`,
          );
          return 1;
        }
      }
      return 0;
    } finally {
      api.close();
      session.close();
    }
  },
});
