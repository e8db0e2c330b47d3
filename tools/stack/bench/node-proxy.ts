/**
 * The bench's Node.js baseline: the least a Node.js HTTPS proxy does per request, and nothing
 * more (no policy, no log, no metrics). TLS ends here, hop-by-hop headers are dropped both
 * ways (and Host: the API sees its own host and port, as behind the gateway), the API is reached through a keep-alive http.Agent, bodies are piped. Run as its own
 * process, as the gateway is, so it never shares an event loop with the load generator:
 *
 *   node node-proxy.js <cert.pem> <key.pem> <http://127.0.0.1:API_PORT>
 *
 * Listens on a free loopback port and prints `{"port":N}` on stdout.
 */
import { readFileSync } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const withoutHopByHop = (headers: IncomingHttpHeaders, drop?: string): OutgoingHttpHeaders => {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers))
    if (!HOP_BY_HOP.has(name) && name !== drop) out[name] = value;
  return out;
};

const [certFile, keyFile, upstreamUrl] = process.argv.slice(2);
if (!certFile || !keyFile || !upstreamUrl)
  throw new Error('usage: node-proxy <cert.pem> <key.pem> <http://127.0.0.1:PORT>');
const upstream = new URL(upstreamUrl);
if (upstream.protocol !== 'http:' || !['127.0.0.1', 'localhost'].includes(upstream.hostname))
  throw new Error(`node-proxy forwards only to a loopback http:// URL, got ${upstreamUrl}`);
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

const server = createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (req, res) => {
  const forward = request(
    {
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: withoutHopByHop(req.headers, 'host'),
      agent,
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, withoutHopByHop(answer.headers));
      answer.pipe(res);
    },
  );
  forward.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end()));
  req.pipe(forward);
});
server.listen(0, '127.0.0.1', () =>
  console.log(JSON.stringify({ port: (server.address() as AddressInfo).port })),
);
process.on('SIGTERM', () => process.exit(0)); // exit normally, so that --cpu-prof writes its profile
