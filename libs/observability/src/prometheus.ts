/**
 * Prometheus metrics with prom-client (https://github.com/siimon/prom-client). Every
 * component keeps its own {@link Registry} (never the global one), so two gateways or two
 * emulators in one process, as in the tests, count separately.
 *
 * Naming conventions, shared by every component: `<component>_<what>_<unit>`, counters end in
 * `_total`, durations are histograms in seconds, and labels only take values the component
 * chose from a bounded set (a route template, a status code, an outcome), never a path, a
 * header, a token or a key.
 */
import { Counter, type Gauge, type Histogram, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The Content-Type of the text exposition format (0.0.4). */
export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** Latency buckets in seconds, from one millisecond to a minute. */
export const LATENCY_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

type Labelled<T extends string> = Counter<T> | Gauge<T> | Histogram<T>;

/**
 * prom-client's `metric.labels(...)` hashes the label set on every call. On a per-request path
 * this keeps one child per label set, found by a key the caller builds (a few string joins).
 * The number of label sets must be bounded by the caller, as for every Prometheus label.
 */
export function childCache<T extends string, M extends Labelled<T>>(
  metric: M,
): (key: string, labels: () => Partial<Record<T, string | number>>) => ReturnType<M['labels']> {
  const children = new Map<string, ReturnType<M['labels']>>();
  return (key, labels) => {
    let child = children.get(key);
    if (child === undefined) {
      child = metric.labels(labels()) as ReturnType<M['labels']>;
      children.set(key, child);
    }
    return child;
  };
}

/**
 * A counter whose value another object keeps (a cache's hit count, say): read at each scrape,
 * so the hot path only increments its own number.
 */
export function mirroredCounter(registry: Registry, name: string, help: string, read: () => number): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}
