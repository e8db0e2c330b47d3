// @ts-check
// What every certflow k6 script shares: its settings from the environment (k6 passes the
// system environment to __ENV: https://grafana.com/docs/k6/latest/using-k6/environment-variables/),
// the thresholds of certflow's own runner, and the JSON summary.
//
// The runner (load/src/k6-suites.ts) derives PROFILE_* from load/src/profiles.ts, the one
// source of truth for VUs, duration and thresholds; a user running a script by hand sets them.

/**
 * A required environment variable; a missing one stops the script in its init context, which
 * k6 reports as a script error (non-zero exit).
 * @param {string} name
 * @returns {string}
 */
export function env(name) {
  const value = __ENV[name];
  if (!value) throw new Error(`environment variable ${name} is not set (see load/k6/README.md)`);
  return value;
}

/** @returns {number} the profile's duration of one measurement, in milliseconds */
export function durationMs() {
  return Number(env('PROFILE_DURATION_MS'));
}

/**
 * VUs, duration and certflow's thresholds: at least one request, no failed request
 * (http_req_failed counts unexpected statuses and transport errors), p99 latency within the
 * profile's bound, every check passed.
 * A threshold that fails makes `k6 run` exit with code 99
 * (https://grafana.com/docs/k6/latest/using-k6/thresholds/).
 * @param {Record<string, string[]>} [extra] more thresholds
 */
export function profileOptions(extra = {}) {
  return {
    vus: Number(env('PROFILE_VUS')),
    duration: `${durationMs()}ms`,
    summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(99)'],
    thresholds: {
      http_req_failed: [`rate<=${env('PROFILE_MAX_FAILURE_RATE')}`],
      http_req_duration: [`p(99)<=${env('PROFILE_MAX_P99_MS')}`],
      checks: ['rate==1'],
      // A script that made no request measured nothing: it must not pass.
      http_reqs: ['count>0'],
      ...extra,
    },
  };
}

/**
 * handleSummary: k6's summary data as JSON to K6_SUMMARY_FILE, and one line on stdout
 * (https://grafana.com/docs/k6/latest/results-output/end-of-test/custom-summary/).
 * @param {string} script
 * @param {{ metrics: Record<string, { values: Record<string, number> }> }} data
 * @returns {Record<string, string>}
 */
export function summaryOutput(script, data) {
  const file = env('K6_SUMMARY_FILE');
  const requests = data.metrics.http_reqs ? data.metrics.http_reqs.values.count : 0;
  return { [file]: JSON.stringify(data), stdout: `${script}: ${requests} requests; summary in ${file}\n` };
}

/**
 * `Authorization: Bearer …` headers for the token the runner acquired.
 * @returns {{ headers: Record<string, string> }}
 */
export function bearer() {
  return { headers: { Authorization: `Bearer ${env('ACCESS_TOKEN')}` } };
}
