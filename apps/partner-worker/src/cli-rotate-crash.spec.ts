/**
 * `cert rotate` killed (SIGKILL) at every step in turn, with a key file and with a key in a
 * SoftHSM2 token: the built CLI, the real emulator, real MSAL, real TLS. Kill points:
 * - every mutating file operation: the CLI runs under strace, which kills it as it enters the
 *   N-th call of one syscall (`-e trace=S -e inject=S:signal=SIGKILL:when=N`). strace 6 counts
 *   `when=` per syscall of the set and per thread (measured), and injects only into traced
 *   syscalls (`-e trace=none` injects nothing, nor does `--seccomp-bpf`); the CLI's file
 *   operations, SoftHSM2's included, are synchronous on the main thread, so one syscall's count
 *   is one sequence. A counting run lists how often each syscall is made; each is then killed at
 *   N = 1, 2, … until a run completes unkilled. openat(O_CREAT) cannot be told from other
 *   opens by strace's filters, so file creation itself is not a kill point; its rename is.
 * - every token request and Graph call, twice: as it reaches the emulator (not handled), and
 *   after the emulator handled it but before the answer leaves (addKey stored, answer lost).
 * After each kill the partner still gets a token and a 200 from an API that checks it (`call`),
 * and rerunning `cert rotate` converges: exactly the new certificate registered,
 * partner.key-id naming its keyId, no journal, no lock, nothing temporary, one generation, and
 * for a token key exactly one key pair left in the token. Kill points run on two lanes that share
 * nothing (an emulator, an API and a partner of their own).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '@certflow/testing';
import {
  cli,
  mutatingSyscalls,
  newPartner,
  problemsAfterRotation,
  startLane,
  straceRotate,
  WORKSPACE,
  type Arm,
  type Lane,
  type Run,
} from './cli-rotate-crash.test-helpers';

type Job =
  { kind: 'file'; syscall: string; n: number } | { kind: 'request'; index: number; phase: Arm['phase'] };

const describeJob = (job: Job) =>
  job.kind === 'file' ? `${job.syscall} #${job.n}` : `request #${job.index} (${job.phase})`;

const killed = (r: Run) => r.signal === 'SIGKILL' || r.code === 137;

describe('cert rotate killed at every step', () => {
  const dir = tempDir('rotate-crash-');
  const lanes: Lane[] = [];
  let syscalls: string[] = [];

  beforeAll(async () => {
    execFileSync(
      process.execPath,
      [
        join(WORKSPACE, 'node_modules/typescript/bin/tsc'),
        '-b',
        join(WORKSPACE, 'apps/partner-worker/tsconfig.build.json'),
      ],
      {
        cwd: WORKSPACE,
        stdio: 'pipe',
      },
    );
    syscalls = mutatingSyscalls();
    lanes.push(...(await Promise.all(['a', 'b'].map((name) => startLane(dir.path, name)))));
  }, 120_000);

  afterAll(async () => {
    for (const lane of lanes) await lane.close();
    dir.remove();
  });

  for (const keyIn of ['file', 'pkcs11'] as const) {
    it(`${keyIn === 'file' ? 'a key file' : 'a key in a SoftHSM2 token'}: after a kill at any step the partner works, and a rerun converges`, async () => {
      const started = Date.now();
      // The counting run: which syscalls, how often, and which requests.
      const lane = lanes[0]!;
      const first = await newPartner(lane, dir.path, `${keyIn}-count`, keyIn);
      const recorder: Arm = { index: Infinity, phase: 'arrive', kill: async () => {}, seen: [] };
      lane.arm = recorder;
      const log = join(dir.path, `${keyIn}-strace.log`);
      const counted = await straceRotate(syscalls, 0, first.env, log);
      lane.arm = undefined;
      expect(counted.code, counted.stderr).toBe(0);
      expect(await problemsAfterRotation(lane, first)).toEqual([]);
      first.token?.remove();
      const counts = new Map<string, number>();
      for (const line of readFileSync(log, 'utf8').split('\n')) {
        const name = /^\d+\s+([a-z0-9_]+)\(/.exec(line)?.[1];
        if (name) counts.set(name, (counts.get(name) ?? 0) + 1);
      }
      const jobs: Job[] = [
        ...[...counts].flatMap(([syscall, count]) =>
          Array.from({ length: count + 1 }, (_, i): Job => ({ kind: 'file', syscall, n: i + 1 })),
        ),
        ...recorder.seen.flatMap((_, i): Job[] => [
          { kind: 'request', index: i + 1, phase: 'arrive' },
          { kind: 'request', index: i + 1, phase: 'answered' },
        ]),
      ];

      const failures: string[] = [];
      const recovered = new Map<string, number>();
      let kills = 0;
      let nextJob = 0;
      const runJob = async (lane: Lane, job: Job, k: number) => {
        const partner = await newPartner(lane, dir.path, `${keyIn}-${k}`, keyIn);
        const fail = (what: string) => failures.push(`${describeJob(job)}: ${what}`);
        try {
          let outcome: Run;
          if (job.kind === 'file') outcome = await straceRotate([job.syscall], job.n, partner.env);
          else {
            const child: { pid: number; running?: Promise<Run> } = { pid: 0 };
            lane.arm = {
              index: job.index,
              phase: job.phase,
              seen: [],
              kill: async () => {
                process.kill(child.pid, 'SIGKILL');
                await child.running;
              },
            };
            child.running = cli(['cert', 'rotate', '--json'], partner.env, (p) => (child.pid = p));
            outcome = await child.running;
            lane.arm = undefined;
          }
          const last = job.kind === 'file' && job.n === counts.get(job.syscall)! + 1;
          if (killed(outcome) === last)
            return fail(
              last ? 'killed, although every call was counted' : `not killed (exit ${outcome.code})`,
            );
          if (!killed(outcome)) {
            if (outcome.code !== 0) return fail(`the unkilled run failed: ${outcome.stderr}`);
          } else {
            kills++;
            const call = await cli(['call', '/orders', '--json'], partner.env);
            if (call.code !== 0 || !/"status":200/.test(call.stdout))
              return fail(
                `the partner gets no token or no 200 after the kill: ${call.stderr || call.stdout}`,
              );
            const rerun = await cli(['cert', 'rotate', '--json'], partner.env);
            if (rerun.code !== 0) return fail(`the rerun failed: ${rerun.stderr}`);
            const event = JSON.parse(rerun.stdout.trim().split('\n').pop()!) as {
              status: string;
              recovered?: string;
            };
            if (event.status !== 'rotated') return fail(`the rerun ended ${event.status}`);
            const from = event.recovered ?? '(none: no journal)';
            recovered.set(from, (recovered.get(from) ?? 0) + 1);
          }
          const problems = await problemsAfterRotation(lane, partner);
          if (problems.length) fail(problems.join('; '));
        } finally {
          lane.arm = undefined;
          partner.token?.remove();
        }
      };
      await Promise.all(
        lanes.map(async (lane) => {
          while (nextJob < jobs.length) {
            const k = nextJob++;
            await runJob(lane, jobs[k]!, k);
          }
        }),
      );
      const seconds = ((Date.now() - started) / 1000).toFixed(0);
      console.log(
        `cert rotate with ${keyIn === 'file' ? 'a key file' : 'a key in SoftHSM2'}: ${kills} kill points (` +
          `${[...counts].map(([s, c]) => `${s} ×${c}`).join(', ')}; ${recorder.seen.length} requests × 2: ${recorder.seen.join(', ')}), ` +
          `${jobs.length} runs in ${seconds} s; reruns recovered from: ${[...recovered].map(([s, c]) => `${s} ×${c}`).join(', ')}`,
      );
      expect(failures).toEqual([]);
      expect(kills).toBe(jobs.length - counts.size);
    }, 900_000);
  }
});
