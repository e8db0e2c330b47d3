/** What every load suite gets (the running stack, the partner's token, the profile) and returns. */
import { setTimeout as sleep } from 'node:timers/promises';
import { partnerCertificate, stackPartner, tokenRequestForm, type StackFile } from '@certflow/stack';
import type { LoadResult } from './http-load';
import type { Profile } from './profiles';
import { brokenThresholds } from './thresholds';

export interface SuiteContext {
  file: StackFile;
  token: string;
  ca: Buffer;
  profile: Profile;
  resultsDir: string;
  /** Aborts when the run is stopped (SIGINT/SIGTERM): loads, waits and sleeps end early. */
  signal?: AbortSignal;
}

export interface Measurement {
  name: string;
  result: LoadResult;
}

/** A window on a suite's timeline (epoch ms): the IdP outage, a `cert rotate` run. */
export interface Marker {
  label: string;
  kind: 'outage' | 'rotation';
  startMs: number;
  endMs: number;
}

/** The emulator's cumulative count of API tokens issued to the partner, read at `atMs` (epoch ms). */
export interface TokenSample {
  atMs: number;
  issued: number;
}

export interface SuiteResult {
  suite: string;
  description: string;
  measurements: Measurement[];
  /** Derived figures: ratios against a baseline, token request counts. */
  figures: Record<string, number>;
  broken: string[];
  markers?: Marker[];
  tokenSamples?: TokenSample[];
}

/** The load options every measurement of the profile shares. */
export function common(ctx: SuiteContext) {
  const { connections, durationMs, maxRequests } = ctx.profile;
  return {
    ...(ctx.signal ? { signal: ctx.signal } : {}),
    ca: ctx.ca,
    connections,
    durationMs,
    maxRequests,
    expectedStatus: ctx.profile.thresholds.expectedStatus,
  };
}

/** Waits `ms`; rejects (AbortError) as soon as the run is stopped, so the suite ends and cleans up. */
export function pause(ctx: SuiteContext, ms: number): Promise<void> {
  return sleep(ms, undefined, ctx.signal ? { signal: ctx.signal } : {});
}

/** The profile's thresholds each measurement breaks, named after it. */
export function check(ctx: SuiteContext, measurements: Measurement[]): string[] {
  return measurements.flatMap(({ name, result }) =>
    brokenThresholds(result, ctx.profile.thresholds).map((b) => `${name}: ${b}`),
  );
}

/** The stack partner's client-credentials request (one certificate assertion), url-encoded. */
export async function partnerTokenForm(ctx: SuiteContext): Promise<string> {
  const partner = stackPartner(ctx.file);
  return new URLSearchParams(
    await tokenRequestForm(ctx.file, partner.appId, partnerCertificate(partner)),
  ).toString();
}
