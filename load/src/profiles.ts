import type { Thresholds } from './thresholds';

export interface Profile {
  name: 'smoke' | 'full';
  durationMs: number;
  connections: number;
  maxRequests: number;
  thresholds: Thresholds;
}

/** smoke: seconds, part of npm test. full: npm run load. */
export const PROFILES: Record<Profile['name'], Profile> = {
  smoke: {
    name: 'smoke',
    durationMs: 3_000,
    connections: 8,
    maxRequests: 200_000,
    thresholds: { maxFailureRate: 0, maxP99Ms: 1_000, expectedStatus: 200 },
  },
  full: {
    name: 'full',
    durationMs: 30_000,
    connections: 32,
    maxRequests: 5_000_000,
    thresholds: { maxFailureRate: 0, maxP99Ms: 500, expectedStatus: 200 },
  },
};
