import { TopologyError } from './topology-error';

/** The TopologyError `run` throws; any other error is rethrown, and no error at all fails the test. */
export function topologyErrorOf(run: () => unknown): TopologyError {
  try {
    run();
  } catch (err) {
    if (err instanceof TopologyError) return err;
    throw err;
  }
  throw new Error('expected a TopologyError');
}
