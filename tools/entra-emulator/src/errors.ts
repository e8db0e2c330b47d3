/** Failures of the emulator itself (not protocol errors sent to clients), each with a stable `code`. */
export type EmulatorErrorCode =
  'ERR_STATE_DAMAGED' | 'ERR_STATE_LOCKED' | 'ERR_INFO_MISSING' | 'ERR_INVALID_OPTIONS' | 'ERR_LISTEN_FAILED';

export class EmulatorError extends Error {
  override readonly name = 'EmulatorError';
  constructor(
    readonly code: EmulatorErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
