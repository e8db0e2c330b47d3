/**
 * A partner's `.cer` holds exactly one certificate and nothing else. Certificates and keys are
 * made at test time; the files are the ones a partner could send. The refusal is checked in
 * the built CLI too: exit code 2, the partner and file named, nothing contacted.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSelfSignedCertificate, pemToDer, type CertificateAndKey } from '@certflow/certs';
import type { TopologyPartner } from '@certflow/topology';
import { CertificateFileError, readPartnerCertificates } from './partner-certificates';
import { ensureBuilt, runCli, writeTopology } from './provision.test-helpers';

describe('a partner .cer', () => {
  const work = mkdtempSync(join(tmpdir(), 'provision-cer-'));
  let partner: CertificateAndKey;
  let other: CertificateAndKey;
  let der: Buffer;

  const partnerWith = (cerFile: string): TopologyPartner => ({
    name: 'fabrikam',
    displayName: 'fabrikam-partner',
    certificate: { commonName: 'fabrikam-partner', keySize: 2048, validityDays: 365, cerFile },
    roles: {},
  });
  const write = (name: string, content: string | Buffer) => {
    const file = join(work, name);
    writeFileSync(file, content);
    return file;
  };
  const read = (file: string) => readPartnerCertificates([partnerWith(file)]).get('fabrikam');
  const refusal = (file: string): string => {
    try {
      read(file);
    } catch (err) {
      expect(err).toBeInstanceOf(CertificateFileError);
      return (err as Error).message;
    }
    throw new Error(`${file} was accepted`);
  };

  beforeAll(() => {
    ensureBuilt();
    partner = createSelfSignedCertificate({ commonName: 'fabrikam-partner' });
    other = createSelfSignedCertificate({ commonName: 'someone-else' });
    der = pemToDer(partner.certificatePem);
  }, 60_000);

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('is read from DER or from one PEM block, to the same certificate', () => {
    const fromDer = read(write('partner.cer', der));
    const fromPem = read(write('partner.pem', `\n${partner.certificatePem}\n\n`));
    expect(fromDer?.der.equals(der)).toBe(true);
    expect(fromPem?.der.equals(der)).toBe(true);
    expect(fromPem?.sha1).toBe(fromDer?.sha1);
    expect(fromDer?.sha1).toMatch(/^[0-9A-F]{40}$/);
    expect(fromDer?.subject).toBe('CN=fabrikam-partner');
  });

  it('is refused when anything follows the certificate or sits beside it', () => {
    const pkcs8 = createPrivateKey(partner.privateKeyPem).export({ type: 'pkcs8', format: 'der' });
    const derWithKey = Buffer.concat([der, pkcs8]);
    const cases: [string, string | Buffer, RegExp][] = [
      ['der-with-key.cer', derWithKey, /: \d+ byte\(s\) follow the certificate/],
      ['der-with-second.cer', Buffer.concat([der, pemToDer(other.certificatePem)]), /byte\(s\) follow/],
      ['der-with-one-byte.cer', Buffer.concat([der, Buffer.from([0])]), /: 1 byte\(s\) follow/],
      [
        'pem-body-with-key.pem',
        `-----BEGIN CERTIFICATE-----\n${derWithKey.toString('base64')}\n-----END CERTIFICATE-----\n`,
        /byte\(s\) follow the certificate/,
      ],
      [
        'two-certificates.pem',
        partner.certificatePem + other.certificatePem,
        /holds 2 PEM blocks \(CERTIFICATE, CERTIFICATE\); a \.cer holds exactly one certificate/,
      ],
      ['with-key.pem', partner.certificatePem + partner.privateKeyPem, /holds a private key/],
      ['key-first.pem', partner.privateKeyPem + partner.certificatePem, /holds a private key/],
      [
        'with-parameters.pem',
        partner.certificatePem +
          '-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n',
        /holds 2 PEM blocks \(CERTIFICATE, EC PARAMETERS\)/,
      ],
      [
        'public-key.pem',
        String(createPublicKey(partner.privateKeyPem).export({ type: 'spki', format: 'pem' })),
        /holds a PEM "PUBLIC KEY" block, not a CERTIFICATE/,
      ],
      [
        'trailing-text.pem',
        `${partner.certificatePem}MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n`,
        /outside its PEM block/,
      ],
      [
        'leading-data.pem',
        Buffer.concat([pkcs8, Buffer.from(partner.certificatePem)]),
        /outside its PEM block/,
      ],
      [
        'unterminated.pem',
        partner.certificatePem.replace(/-----END CERTIFICATE-----\s*$/, ''),
        /0 PEM blocks/,
      ],
      ['base64.cer', der.toString('base64'), /not an X\.509 certificate/],
      ['empty.cer', '', /not an X\.509 certificate/],
    ];
    for (const [name, content, message] of cases) {
      const file = write(name, content);
      const problem = refusal(file);
      expect(problem, name).toMatch(message);
      expect(problem.startsWith(`partner fabrikam: certificate.cerFile ${file}: `), name).toBe(true);
    }
  });

  it('is refused once expired', () => {
    const file = write('partner.cer', der);
    const later = new Date(Date.now() + 400 * 86_400_000);
    expect(() => readPartnerCertificates([partnerWith(file)], later)).toThrow(/expired on .*ask the partner/);
  });

  it('stops provision with exit code 2 before anything is contacted', async () => {
    write(
      'fabrikam.cer',
      Buffer.concat([der, createPrivateKey(partner.privateKeyPem).export({ type: 'pkcs8', format: 'der' })]),
    );
    const topology = writeTopology(work, 'topology.json', {
      apis: [
        {
          name: 'orders',
          displayName: 'orders',
          identifierUri: 'api://certflow-provision-cer',
          appRoles: [{ value: 'Orders.Read' }],
          policy: 'policy.xml',
        },
      ],
      partners: [
        {
          name: 'fabrikam',
          displayName: 'fabrikam-partner',
          certificate: { cerFile: 'fabrikam.cer' },
          roles: {},
        },
      ],
    });
    // The sign-in host cannot be reached: contacting it would fail with exit code 1.
    const run = await runCli(
      [
        '--apply',
        '--topology',
        topology,
        '--tenant',
        'contoso.onmicrosoft.com',
        '--authority-host',
        'https://127.0.0.1:9',
      ],
      {},
      work,
    );
    expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 2, stdout: '' });
    expect(run.stderr).toContain(`partner fabrikam: certificate.cerFile ${join(work, 'fabrikam.cer')}: `);
    expect(run.stderr).toMatch(/byte\(s\) follow the certificate .*\nNothing was contacted\.\n$/);
  });
});
