/** What the certificate store specs share. */
import { expect } from 'vitest';
import { CertificateStoreError } from './credential';

/** The CertificateStoreError `fn` throws; fails the test when it throws nothing or something else. */
export function storeError(fn: () => unknown): CertificateStoreError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CertificateStoreError);
    return err as CertificateStoreError;
  }
  throw new Error('expected a CertificateStoreError');
}
