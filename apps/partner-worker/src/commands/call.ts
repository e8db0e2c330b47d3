/** `call [METHOD] <path>`: authenticated requests through the resilient client, each with a new trace. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { startTrace } from '@certflow/observability';
import {
  API_METHODS,
  ApiCallError,
  ApiClient,
  checkApiRequest,
  readPartnerConfig,
  type ApiRequest,
} from '@certflow/partner-client';
import { command, JSON_OPTION, positiveInt, UsageError } from './command';
import { openSession } from './token';

const EXAMPLE = `e.g. call POST /orders --data '{"customerReference":"PO-1","total":{"amount":"12.50","currency":"EUR"}}'`;

export const call = command({
  name: 'call',
  usage: `  call <path> [--times N] [--json]
  call METHOD <path> [--data JSON|@FILE] [--header "Name: value"]... [--times N] [--json]
                      call the API at PARTNER_API_BASE_URL + path with a bearer token, N times
                      (METHOD ${API_METHODS.join(', ')}; default GET)`,
  help: `Usage: partner-worker call [METHOD] <path> [--data JSON|@FILE] [--header "Name: value"]...
                          [--times N] [--json]

Sends METHOD (${API_METHODS.join(', ')}; default GET) to PARTNER_API_BASE_URL + path
with a bearer token from the partner's certificate, through the resilient client, and prints
"HTTP <status>" then the body (--json: one "response" event per call). Exits 1 when an answer
is not 2xx.

  --data JSON      the request body: JSON, sent as it is written with content-type
                   application/json (a --header Content-Type replaces it); --data @FILE reads
                   the JSON from FILE. Not with GET or HEAD.
  --header "N: v"  an extra request header (repeatable, each name once). Headers the client
                   sets itself (Authorization, Host, Content-Length, Transfer-Encoding,
                   Connection, traceparent, tracestate, ...) are refused.
  --times N        send the request N times (1 to 10000), each with its own trace

Retries: a GET (or HEAD, OPTIONS, PUT, DELETE) is repeated after a 5xx, a 429 or a dropped
connection; a POST or PATCH only when it cannot have been acted on: after a 401 (once, with a
fresh token), a 429, or a connection that was never made.

${EXAMPLE}`,
  options: {
    ...JSON_OPTION,
    times: { type: 'string' },
    data: { type: 'string' },
    header: { type: 'string', multiple: true },
  },
  args: 2,
  async run({ io, values, args, emit, clock }) {
    const { path, request } = callRequest(args, values.data, values.header ?? [], io.cwd);
    const times = positiveInt('times', values.times, 1, 10_000);
    const config = readPartnerConfig(io.env, io.cwd);
    const session = openSession(io, config, values.json, emit, clock);
    const api = new ApiClient({
      baseUrl: config.apiBaseUrl,
      tokens: session.tokens,
      ...(config.caPem ? { ca: config.caPem } : {}),
    });
    try {
      for (let i = 1; i <= times; i++) {
        const trace = startTrace();
        const response = await api.request(path, { ...request, trace });
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
            `partner-worker: error: ${request.method} ${path} answered HTTP ${response.status}${times > 1 ? ` (call ${i} of ${times})` : ''} (traceId ${trace.traceId})`,
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

/** The request the arguments describe, every problem a UsageError before anything is read or sent. */
function callRequest(
  args: string[],
  data: string | undefined,
  headerArgs: string[],
  cwd: string,
): { path: string; request: ApiRequest & { method: string } } {
  const [first, second] = args;
  if (first === undefined) throw new UsageError(`call needs a path, e.g. call /orders; ${EXAMPLE}`);
  const isMethod = (word: string) => (API_METHODS as readonly string[]).includes(word.toUpperCase());
  if (second === undefined && !first.startsWith('/') && isMethod(first))
    throw new UsageError(`call ${first} needs a path, e.g. call ${first.toUpperCase()} /orders`);
  if (second !== undefined && first.startsWith('/')) throw new UsageError(`unexpected argument "${second}"`);
  const [method, path] = second === undefined ? ['GET', first] : [first, second];
  if (!isMethod(method))
    throw new UsageError(`unknown method "${method}": use one of ${API_METHODS.join(', ')}`);
  if (!path.startsWith('/')) throw new UsageError(`the path must start with "/", got "${path}"`);

  const headers: Record<string, string> = {};
  for (const header of headerArgs) {
    const match = /^([^:\s]+):[ \t]*(.*?)[ \t]*$/s.exec(header);
    if (!match) throw new UsageError(`--header must be "Name: value", got "${header}"`);
    const [, name, value] = match as unknown as [string, string, string];
    if (Object.keys(headers).some((n) => n.toLowerCase() === name.toLowerCase()))
      throw new UsageError(`--header ${name} is given twice`);
    headers[name] = value;
  }
  const body = data === undefined ? undefined : jsonBody(data, cwd);
  if (body !== undefined && !Object.keys(headers).some((n) => n.toLowerCase() === 'content-type'))
    headers['content-type'] = 'application/json';
  const request = { method: method.toUpperCase(), headers, ...(body === undefined ? {} : { body }) };
  try {
    checkApiRequest(request);
  } catch (err) {
    if (!(err instanceof ApiCallError)) throw err;
    if (err.code === 'ERR_INVALID_HEADER') throw new UsageError(`--header: ${err.message}`);
    throw new UsageError(
      body !== undefined ? `${err.message}: drop --data, or give a method, ${EXAMPLE}` : err.message,
    );
  }
  return { path, request };
}

/** --data JSON or --data @FILE: the JSON text, checked, sent as it is written. */
function jsonBody(data: string, cwd: string): string {
  let text = data;
  let source = '--data';
  if (data.startsWith('@')) {
    const file = resolve(cwd, data.slice(1));
    source = `--data @${data.slice(1)}`;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`${source}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? err})`);
    }
  }
  const position = jsonErrorPosition(text);
  if (position !== undefined) {
    const before = text.slice(0, position).split('\n');
    throw new UsageError(
      `${source} is not JSON (error at line ${before.length}, column ${before.at(-1)!.length + 1}); call sends its body as JSON with content-type application/json`,
    );
  }
  return text;
}

/**
 * Where JSON.parse stops in `text`, or undefined when it is JSON. Only the position is taken
 * from the parser: its messages may quote the text (a file's first characters, e.g. a
 * password file's), and the error must not. When the message names no position, it is the
 * length of the longest prefix that could still begin a JSON text (found by bisection).
 */
function jsonErrorPosition(text: string): number | undefined {
  const stop = (prefix: string): number | undefined => {
    try {
      JSON.parse(prefix);
      return undefined;
    } catch (err) {
      const message = (err as Error).message;
      if (message === 'Unexpected end of JSON input') return prefix.length;
      const at = / at position (\d+)/.exec(message);
      return at ? Number(at[1]) : -1;
    }
  };
  const position = stop(text);
  if (position === undefined || position >= 0) return position;
  const viable = (length: number) => (stop(text.slice(0, length)) ?? length) >= length;
  let [good, bad] = [0, text.length]; // viable(0): the empty text ends early
  while (bad - good > 1) {
    const middle = Math.floor((good + bad) / 2);
    if (viable(middle)) good = middle;
    else bad = middle;
  }
  return good;
}
