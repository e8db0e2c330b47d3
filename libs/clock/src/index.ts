export {
  ClockError,
  MAX_CLOCK_OFFSET_MS,
  checkClockOffset,
  formatClockOffset,
  parseClockOffset,
} from './offset.js';
export {
  isSystemClock,
  OffsetClock,
  readClockFile,
  systemClock,
  writeClockFile,
  type Clock,
} from './clock.js';
export {
  CLOCK_FILE_ENV,
  CLOCK_FILE_POLL_MS,
  CLOCK_OFFSET_ENV,
  clockFromEnvironment,
  clockNotice,
  type EnvironmentClock,
} from './environment.js';
