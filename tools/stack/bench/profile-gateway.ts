/**
 * Where the gateway's CPU goes under the load of `stack:bench`. Reproduce with:
 *
 *   npx nx run stack:build    # builds the stack and what it starts (API, partner worker, gateway)
 *   node tools/stack/dist-bench/bench/profile-gateway.js [--seconds 15] [--top 30] [--out DIR]
 *
 * It starts the stack process (tools/stack's main.js: the emulator and the gateway run in that
 * process, with validate-jwt, the access log and the metrics on, the API as its own child) under
 * `node --cpu-prof`, and the bare Node.js proxy of the bench (node-proxy.ts) under
 * `--cpu-prof` too; then wrk (1 thread, 32 connections, authenticated `GET /orders`) loads
 * the gateway and then the bare proxy for --seconds each, after a warm-up. Both processes are
 * stopped with SIGTERM, so they exit normally and V8 writes the profiles (DIR, default
 * load/results/profile-gateway/; open a .cpuprofile in Chrome DevTools or speedscope).
 *
 * Only the samples taken while wrk ran are counted (V8's profile clock and process.hrtime are
 * both the monotonic clock), so start-up (key generation, the partner's first call) is not in
 * the figures. Printed: CPU time per request of each process (from /proc, so Linux only), and for the gateway the top
 * functions and files by self time and the certflow functions by inclusive time, in % of the
 * gateway process's busy (non-idle) CPU, each row tagged: certflow (tools/, libs/), node
 * (node: internals, incl. TLS and HTTP), native (V8 builtins, GC, program) or a package name.
 * Needs wrk (apt-get install wrk).
 */
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { SourceMap } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
// The stack as built (launchStackProcess starts the dist/main.js next to it), not a second copy
// of its sources compiled into dist-bench: the bench target builds the stack first.
import { launchStackProcess, requestPartnerToken, servedApi, workspaceRoot } from '@certflow/stack';
import { type BenchProcess, startNodeProxy } from './bench-processes';
import { wrkGenerator, wrkPath } from '@certflow/testing';
import { positiveInteger } from './settings';

const WARM_UP_SECONDS = 3;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

interface Window {
  fromUs: number;
  toUs: number;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

const CLOCK_TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** User + system CPU time of a process so far, from /proc/PID/stat (Linux). */
function processCpuUs(pid: number): number {
  // Fields after the command name (which may hold spaces), from the 3rd: utime is the 14th, stime the 15th.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS_PER_SECOND;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { seconds: { type: 'string' }, top: { type: 'string' }, out: { type: 'string' } },
    strict: true,
  });
  const seconds = positiveInteger(values.seconds, '--seconds', 15);
  const top = positiveInteger(values.top, '--top', 30);
  const root = workspaceRoot();
  const out = resolve(values.out ?? join(root, 'load/results/profile-gateway'));
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const stateDir = mkdtempSync(join(tmpdir(), 'certflow-profile-gateway-'));
  const profileArgs = (name: string) => ['--cpu-prof', '--cpu-prof-dir', out, '--cpu-prof-name', name];

  const stack = await launchStackProcess(stateDir, 60_000, profileArgs('gateway-stack.cpuprofile'));
  let proxy: BenchProcess | undefined;
  try {
    const { file } = stack;
    const api = new URL(servedApi(file).url);
    proxy = await startNodeProxy(stateDir, api, profileArgs('node-proxy.cpuprofile'));
    const generator = wrkGenerator(wrkPath(), {
      path: '/orders',
      headers: { authorization: `Bearer ${await requestPartnerToken(file)}` },
      connections: 32,
      caPem: readFileSync(file.caCertificatePath, 'utf8'),
      workDir: stateDir,
    });
    if (!generator) throw new Error(`wrk not found at ${wrkPath()}: apt-get install wrk, or set BENCH_WRK`);
    const measure = async (url: URL, pid: number) => {
      await generator.run(url, WARM_UP_SECONDS);
      const fromUs = nowUs();
      const cpuBefore = processCpuUs(pid);
      const load = await generator.run(url, seconds);
      const cpuUs = processCpuUs(pid) - cpuBefore;
      return { load, cpuUs, window: { fromUs, toUs: nowUs() } };
    };
    console.log(`profiling under ${generator.name}, ${seconds} s each`);
    const gateway = await measure(new URL(file.gateway.url), stack.pid);
    const node = await measure(proxy.url, proxy.pid);
    await proxy.stop();
    await stack.stop();

    const report: string[] = [];
    const gatewayProfile = readProfile(out, 'gateway-stack.cpuprofile');
    const nodeProfile = readProfile(out, 'node-proxy.cpuprofile');
    const g = analyse(gatewayProfile, gateway.window, root);
    const n = analyse(nodeProfile, node.window, root);
    const line = (name: string, m: typeof gateway, a: Analysis) =>
      `${name.padEnd(16)} ${Math.round(m.load.requests / m.load.seconds)} req/s; per request ${(m.cpuUs / m.load.requests).toFixed(1)} µs CPU (the kernel's count, ${pct(m.cpuUs, a.windowUs)} of one core), ${(a.busyUs / m.load.requests).toFixed(1)} µs in busy samples (${pct(a.busyUs, a.windowUs)} of the time)`;
    report.push(
      `load generator: ${generator.name}, ${seconds} s per process`,
      line('gateway:', gateway, g),
      line('bare Node proxy:', node, n),
      'Busy samples count wall time while the thread is not idle, so they include time the',
      'process waited for a core inside a call (on a busy machine mostly in socket writes).',
      '',
      `gateway CPU by kind: ${g.byKind.map(([k, us]) => `${k} ${pct(us, g.busyUs)}`).join(', ')}`,
      `bare proxy CPU by kind: ${n.byKind.map(([k, us]) => `${k} ${pct(us, n.busyUs)}`).join(', ')}`,
      '',
      table(`gateway: top ${top} functions by self time`, g.selfByFunction.slice(0, top), g.busyUs),
      table(`gateway: top ${top} files by self time`, g.selfByFile.slice(0, top), g.busyUs),
      table(
        `gateway: top ${top} certflow functions by inclusive time (what they and their callees cost)`,
        g.inclusiveCertflow.slice(0, top),
        g.busyUs,
      ),
      table(`bare Node proxy: top 15 functions by self time`, n.selfByFunction.slice(0, 15), n.busyUs),
      extraCost(g, gateway.load.requests, n, node.load.requests, top),
    );
    const text = report.join('\n');
    console.log(text);
    writeFileSync(join(out, 'summary.txt'), `${text}\n`);
    console.log(`profiles and summary.txt in ${out}`);
  } finally {
    await proxy?.stop();
    await stack.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function readProfile(dir: string, name: string): CpuProfile {
  if (!readdirSync(dir).includes(name))
    throw new Error(`${join(dir, name)} was not written: the process did not exit normally`);
  return JSON.parse(readFileSync(join(dir, name), 'utf8')) as CpuProfile;
}

type Row = [label: string, us: number];

interface Analysis {
  windowUs: number;
  busyUs: number;
  byKind: Row[];
  selfByFunction: Row[];
  selfByFile: Row[];
  inclusiveCertflow: Row[];
}

const sourceMaps = new Map<string, SourceMap | undefined>();

/** `src/x.ts:LINE` through the compiled file's source map, when there is one; else `dist/x.js:LINE`. */
function sourceLocation(path: string, line: number, column: number, root: string): string {
  const mapFile = join(root, `${path}.map`);
  if (!sourceMaps.has(path))
    sourceMaps.set(
      path,
      path.endsWith('.js') && existsSync(mapFile)
        ? new SourceMap(
            JSON.parse(readFileSync(mapFile, 'utf8')) as ConstructorParameters<typeof SourceMap>[0],
          )
        : undefined,
    );
  const entry = sourceMaps.get(path)?.findEntry(line, column);
  if (!entry || !('originalSource' in entry)) return `${path}:${line + 1}`;
  return `${relative(root, resolve(root, dirname(path), entry.originalSource))}:${entry.originalLine + 1}`;
}

/** Self and inclusive time of the samples inside `window`; idle samples are left out. */
function analyse(profile: CpuProfile, window: Window, root: string): Analysis {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const file = (url: string): string => {
    const path = url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url;
    return path.startsWith(`${root}/`) ? path.slice(root.length + 1) : path || '(native)';
  };
  const kind = (url: string, fn: string): string => {
    if (!url) return fn === '(garbage collector)' ? 'gc' : 'native';
    if (url.startsWith('node:')) return 'node';
    const path = file(url);
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1];
    if (pkg) return pkg;
    return /^(tools|libs|apps)\//.test(path) ? 'certflow' : 'other';
  };
  const fnLabel = (n: ProfileNode): string => {
    const { functionName, url, lineNumber, columnNumber } = n.callFrame;
    const where = url ? sourceLocation(file(url), lineNumber, columnNumber, root) : '';
    return `${functionName || '(anonymous)'} ${where} [${kind(url, functionName)}]`;
  };
  const self = new Map<string, number>();
  const byFile = new Map<string, number>();
  const byKind = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, us: number) => m.set(k, (m.get(k) ?? 0) + us);
  let busyUs = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    // A sample's time is the gap to the next sample (V8's own convention in DevTools).
    const us = profile.timeDeltas[i + 1] ?? 0;
    if (t < window.fromUs || t > window.toUs) continue;
    const leaf = nodes.get(profile.samples[i]!)!;
    if (leaf.callFrame.functionName === '(idle)') continue;
    busyUs += us;
    add(self, fnLabel(leaf), us);
    add(byFile, `${file(leaf.callFrame.url)} [${kind(leaf.callFrame.url, leaf.callFrame.functionName)}]`, us);
    add(byKind, kind(leaf.callFrame.url, leaf.callFrame.functionName), us);
    const seen = new Set<string>();
    for (let id: number | undefined = leaf.id; id !== undefined; id = parent.get(id)) {
      const n = nodes.get(id)!;
      if (kind(n.callFrame.url, n.callFrame.functionName) !== 'certflow') continue;
      const label = fnLabel(n);
      if (!seen.has(label)) {
        seen.add(label);
        add(inclusive, label, us);
      }
    }
  }
  const sorted = (m: Map<string, number>): Row[] => [...m].sort((a, b) => b[1] - a[1]);
  return {
    windowUs: window.toUs - window.fromUs,
    busyUs,
    byKind: sorted(byKind),
    selfByFunction: sorted(self),
    selfByFile: sorted(byFile),
    inclusiveCertflow: sorted(inclusive),
  };
}

/**
 * What the gateway spends per request beyond what the bare proxy spends, by kind and by
 * function (self time): the gateway's own work, plus whatever of Node's it causes on top.
 */
function extraCost(g: Analysis, gRequests: number, n: Analysis, nRequests: number, top: number): string {
  const perRequest = (rows: Row[], requests: number) => new Map(rows.map(([k, us]) => [k, us / requests]));
  const diff = (gRows: Row[], nRows: Row[]): Row[] => {
    const a = perRequest(gRows, gRequests);
    const b = perRequest(nRows, nRequests);
    return [...new Set([...a.keys(), ...b.keys()])]
      .map((k): Row => [k, (a.get(k) ?? 0) - (b.get(k) ?? 0)])
      .sort((x, y) => y[1] - x[1]);
  };
  const extra = g.busyUs / gRequests - n.busyUs / nRequests;
  const rows = (title: string, list: Row[]) => [
    `\n${title}`,
    ...list.map(([k, us]) => `${us.toFixed(1).padStart(7)} µs  ${k}`),
  ];
  return [
    `\ngateway minus bare Node proxy: ${extra.toFixed(1)} µs CPU per request`,
    ...rows('by kind (µs per request)', diff(g.byKind, n.byKind)),
    ...rows(
      `top ${top} functions by extra self time (µs per request)`,
      diff(g.selfByFunction, n.selfByFunction).slice(0, top),
    ),
  ].join('\n');
}

const pct = (part: number, whole: number): string => `${((100 * part) / whole).toFixed(1)} %`;

function table(title: string, rows: Row[], totalUs: number): string {
  return [
    `\n${title}`,
    ...rows.map(
      ([label, us]) => `${pct(us, totalUs).padStart(7)}  ${(us / 1000).toFixed(0).padStart(6)} ms  ${label}`,
    ),
  ].join('\n');
}

main().catch((err: unknown) => {
  console.error(`profile failed: ${(err as Error)?.stack ?? String(err)}`);
  process.exitCode = 1;
});
