import { describe, expect, it } from 'vitest';
import { parseCertificate } from '@certflow/certs';
import { isCertificate } from './reconcile-partner';
import { partnerCertificate } from './reconcile.test-helpers';

describe('isCertificate: a registered key credential found again, however Graph encodes its identifier', () => {
  const certificate = parseCertificate(partnerCertificate('contoso').cer);
  const other = parseCertificate(partnerCertificate('fabrikam').cer);
  const sha1 = certificate.thumbprints.sha1Hex;
  const credential = (customKeyIdentifier: string | null, key: string | null = null) => ({
    keyId: 'k',
    type: 'AsymmetricX509Cert',
    usage: 'Verify',
    displayName: null,
    customKeyIdentifier,
    key,
  });

  it.each([
    ['the hex thumbprint (the emulator)', credential(sha1)],
    ['the hex thumbprint in lowercase', credential(sha1.toLowerCase())],
    ['base64 of the thumbprint bytes (Graph)', credential(Buffer.from(sha1, 'hex').toString('base64'))],
    ['base64 of the hex text', credential(Buffer.from(sha1, 'latin1').toString('base64'))],
    ['the key itself', credential(null, certificate.der.toString('base64'))],
  ])('by %s', (_how, registered) => {
    expect(isCertificate(registered, certificate)).toBe(true);
    expect(isCertificate(registered, other)).toBe(false);
  });

  it('not by an empty identifier without a key', () => {
    expect(isCertificate(credential(null), certificate)).toBe(false);
    expect(isCertificate(credential(''), certificate)).toBe(false);
  });
});
