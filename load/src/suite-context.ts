/** What every load suite gets (the running stack, the partner's token, the profile) and returns. */
import type { StackFile } from '@certflow/stack';
import type { LoadResult } from './http-load';
import type { Profile } from './profiles';
import { brokenThresholds } from './thresholds';

export interface SuiteContext {
  file: StackFile;
  token: string;
  ca: Buffer;
  profile: Profile;
  resultsDir: string;
  /** k6 scripts that could not run because k6 is not installed. */
  k6NotRun: string[];
}

export interface Measurement {
  name: string;
  result: LoadResult;
}

export interface SuiteResult {
  suite: string;
  description: string;
  measurements: Measurement[];
  /** Derived figures: ratios against a baseline, token request counts. */
  figures: Record<string, number>;
  broken: string[];
}

/** The load options every measurement of the profile shares. */
export function common(ctx: SuiteContext) {
  const { connections, durationMs, maxRequests } = ctx.profile;
  return { ca: ctx.ca, connections, durationMs, maxRequests };
}

/** The profile's thresholds each measurement breaks, named after it. */
export function check(ctx: SuiteContext, measurements: Measurement[]): string[] {
  return measurements.flatMap(({ name, result }) =>
    brokenThresholds(result, ctx.profile.thresholds).map((b) => `${name}: ${b}`),
  );
}
