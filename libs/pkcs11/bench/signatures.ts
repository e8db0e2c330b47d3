/**
 * `npx nx run pkcs11:bench`: PS256 client assertions signed per second, in one run, by
 *
 * - a file key: an RSA-2048 PKCS#8 key held in this process (@certflow/certs' fileKeySigner,
 *   node:crypto), and
 * - a key inside SoftHSM2: the same kind of key generated in a fresh token, signed through
 *   @certflow/pkcs11 (C_SignInit + C_SignAsync on the token's signing session).
 *
 * Each signs the same signing input (an assertion's header and claims, as MSAL would build it),
 * one signature at a time, awaited, as a worker signs one assertion per token request. The two
 * run in alternating rounds of ROUND_MS each so that neither always runs on a warmer process;
 * the figures are the medians of the rounds, and the ratio is file / SoftHSM2 (also per round,
 * since a round's two figures share the machine's load at that moment). Nothing here is
 * asserted: the numbers are for reading, not a pass/fail. Writes
 * load/results/bench-signatures.json (read by `npm run load:publish`).
 */
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileKeySigner, verifySignature, type KeySigner } from '@certflow/certs';
import { Pkcs11Token, type Pkcs11Uri } from '@certflow/pkcs11';
import { createSoftHsmToken, IN_PROCESS_LOAD } from '@certflow/testing';

const ROUNDS = 5;
const ROUND_MS = 1500;

function signingInput(): Buffer {
  const b64 = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const header = { alg: 'PS256', typ: 'JWT', 'x5t#S256': 'q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c' };
  const claims = {
    aud: 'https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/oauth2/v2.0/token',
    iss: '11111111-1111-1111-1111-111111111111',
    sub: '11111111-1111-1111-1111-111111111111',
    jti: randomUUID(),
    nbf: now,
    iat: now,
    exp: now + 600,
  };
  return Buffer.from(`${b64(header)}.${b64(claims)}`);
}

async function perSecond(signer: KeySigner, data: Buffer): Promise<number> {
  let count = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ROUND_MS) * 1_000_000n;
  let now = start;
  while (now < end) {
    await signer.sign('PS256', data);
    count++;
    now = process.hrtime.bigint();
  }
  return count / (Number(now - start) / 1e9);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

async function checked(signer: KeySigner, data: Buffer): Promise<void> {
  const signature = await signer.sign('PS256', data);
  if (!verifySignature(signer.publicKey, 'PS256', data, signature)) {
    throw new Error(`${signer.description}: bad signature`);
  }
}

async function main(): Promise<void> {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const filePem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  const fileSign = fileKeySigner(filePem, '/srv/partner/partner.key.pem');

  const hsm = createSoftHsmToken({ label: 'bench' });
  process.env.SOFTHSM2_CONF = hsm.conf;
  const token = Pkcs11Token.open({ token: hsm.label }, { modulePath: hsm.modulePath, pin: hsm.pin });
  try {
    const key: Pkcs11Uri = { object: 'bench-key', id: Buffer.from([1]), type: 'private' };
    token.generateRsaKeyPair({ label: 'bench-key', id: key.id!, bits: 2048 });
    const hsmSign = token.signer(key);

    const data = signingInput();
    await checked(fileSign, data);
    await checked(hsmSign, data);
    // warm both paths before measuring
    await perSecond(fileSign, data);
    await perSecond(hsmSign, data);

    const file: number[] = [];
    const softhsm: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const first = round % 2 ? 'file' : 'softhsm';
      for (const which of first === 'file' ? ['file', 'softhsm'] : ['softhsm', 'file']) {
        (which === 'file' ? file : softhsm).push(
          await perSecond(which === 'file' ? fileSign : hsmSign, data),
        );
      }
      const [f, h] = [file.at(-1)!, softhsm.at(-1)!];
      console.log(
        `round ${round}: file key ${f.toFixed(0)}/s, SoftHSM2 ${h.toFixed(0)}/s, ratio ${(f / h).toFixed(2)}×`,
      );
    }
    const f = median(file);
    const s = median(softhsm);
    console.log(
      `\nPS256 assertions signed per second (RSA-2048, one at a time, median of ${ROUNDS} rounds of ${ROUND_MS} ms; load generator: ${IN_PROCESS_LOAD}):`,
    );
    console.log(
      `  file key (node:crypto)        ${f.toFixed(0).padStart(7)}/s  ${(1000 / f).toFixed(3)} ms each`,
    );
    console.log(
      `  SoftHSM2 (@certflow/pkcs11)   ${s.toFixed(0).padStart(7)}/s  ${(1000 / s).toFixed(3)} ms each`,
    );
    const ratios = file.map((v, i) => v / softhsm[i]!);
    console.log(
      `  ratio file / SoftHSM2         ${(f / s).toFixed(2)}× (median of the rounds' ratios ${median(ratios).toFixed(2)}×)`,
    );
    const resultsDir = join(resolve(__dirname, '..', '..', '..', '..'), 'load', 'results');
    mkdirSync(resultsDir, { recursive: true });
    const out = join(resultsDir, 'bench-signatures.json');
    const summary = {
      benchmark: 'pkcs11:bench',
      at: new Date().toISOString(),
      algorithm: 'PS256',
      keyBits: 2048,
      rounds: ROUNDS,
      roundMs: ROUND_MS,
      filePerSecond: Math.round(f),
      softHsmPerSecond: Math.round(s),
      fileVsSoftHsm: Number((f / s).toFixed(2)),
      medianRoundRatio: Number(median(ratios).toFixed(2)),
      loadGenerator: IN_PROCESS_LOAD,
    };
    writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
    console.log(`  wrote ${out}`);
  } finally {
    token.close();
    hsm.remove();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
