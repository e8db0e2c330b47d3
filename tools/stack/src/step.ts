/** A step of the flow that failed, named so that `npm start -- --once` can say which. */
export class StepFailedError extends Error {
  override readonly name = 'StepFailedError';
  constructor(
    readonly step: string,
    cause: unknown,
  ) {
    super(`${step} failed: ${cause instanceof Error ? cause.message : String(cause)}`);
  }

  /** Adds `note` (e.g. what had already been changed) after the message. */
  withNote(note: string): this {
    this.message = `${this.message}\n${note}`;
    return this;
  }
}

export async function step<T>(name: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw err instanceof StepFailedError ? err : new StepFailedError(name, err);
  }
}
