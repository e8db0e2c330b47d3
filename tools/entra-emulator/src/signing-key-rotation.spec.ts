import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { createLocalJWKSet, jwtVerify, type JSONWebKeySet } from 'jose';
import { startEmulator } from './emulator';
import { GraphClient } from './graph-client';
import { statePath, type EmulatorState } from './state-store';
import {
  assertionForm,
  clientAssertion,
  decodeJwt,
  https,
  postForm,
  removeDir,
  startFixture,
  tempStateDir,
  type Fixture,
} from './emulator.test-helpers';

const LIFETIME = 3600;
let f: Fixture;
beforeAll(async () => {
  f = await startFixture({ tokenLifetimeSeconds: LIFETIME });
});
afterAll(async () => {
  await f?.close();
});

const jwksNow = async () => (await https(f.emulator, f.emulator.jwksUri)).json() as unknown as JSONWebKeySet;
const kids = (set: JSONWebKeySet) => set.keys.map((k) => k.kid);

async function partnerToken(): Promise<string> {
  const partner = f.provisioned.partner.appId;
  const res = await postForm(
    f.emulator,
    assertionForm(partner, await clientAssertion(f.emulator.tokenEndpoint, partner, f.partnerCert)),
  );
  expect(res.status, res.text).toBe(200);
  return String(res.json().access_token);
}

async function verify(token: string, set: JSONWebKeySet) {
  return jwtVerify(token, createLocalJWKSet(set), {
    issuer: f.emulator.issuer,
    audience: f.provisioned.api.appId,
    algorithms: ['RS256'],
  });
}

describe('signing-key rotation', () => {
  it('publishes the next key before it signs; tokens from before and after a rotation both verify', async () => {
    const before = await jwksNow();
    expect(before.keys).toHaveLength(2);
    const tokenBefore = await partnerToken();
    const activeBefore = String(decodeJwt(tokenBefore).header.kid);
    expect(kids(before)[0]).toBe(activeBefore);
    const nextBefore = kids(before).find((k) => k !== activeBefore)!;

    const { kid } = await f.emulator.rotateSigningKey();
    // The key that now signs is the one that was already published as the next key.
    expect(kid).toBe(nextBefore);
    const tokenAfter = await partnerToken();
    expect(decodeJwt(tokenAfter).header.kid).toBe(kid);

    const after = await jwksNow();
    expect(after.keys).toHaveLength(3);
    expect(kids(after)).toEqual(expect.arrayContaining([activeBefore, kid]));
    const newNext = kids(after).find((k) => k !== activeBefore && k !== kid)!;
    expect(newNext).toBeDefined();
    // Validators holding the JWKS from before the rotation can verify the new tokens too.
    await verify(tokenAfter, before);
    await verify(tokenBefore, after);
    await verify(tokenAfter, after);

    // The next rotation promotes the key published just now.
    const second = await f.emulator.rotateSigningKey();
    expect(second.kid).toBe(newNext);
    expect(kids(await jwksNow())).toEqual(expect.arrayContaining([activeBefore, kid, newNext]));
  });

  it('keeps a retired key only until the tokens it signed have expired (lifetime + clock skew)', async () => {
    const token = await partnerToken();
    const oldKid = String(decodeJwt(token).header.kid);
    await f.emulator.rotateSigningKey();
    expect(kids(await jwksNow())).toContain(oldKid);
    f.setClockOffset((LIFETIME + 60 - 5) * 1000);
    expect(kids(await jwksNow())).toContain(oldKid);
    f.setClockOffset((LIFETIME + 60 + 5) * 1000);
    try {
      const later = await jwksNow();
      expect(kids(later)).not.toContain(oldKid);
      // Still one active and one next key.
      expect(later.keys.length).toBeGreaterThanOrEqual(2);
    } finally {
      f.setClockOffset(0);
    }
  });

  it('POST /admin/signingKeys/rotate rotates with the admin token; refuses others', async () => {
    const adminToken = await f.graph.accessToken();
    const url = `${f.emulator.url}/admin/signingKeys/rotate`;
    const denied = await https(f.emulator, url, { method: 'POST' });
    expect(denied.status).toBe(401);
    const partnerGraph = await postForm(
      f.emulator,
      assertionForm(
        f.provisioned.partner.appId,
        await clientAssertion(f.emulator.tokenEndpoint, f.provisioned.partner.appId, f.partnerCert),
        'https://graph.microsoft.com/.default',
      ),
    );
    expect(partnerGraph.status, partnerGraph.text).toBe(200);
    const forbidden = await https(f.emulator, url, {
      method: 'POST',
      headers: { authorization: `Bearer ${String(partnerGraph.json().access_token)}` },
    });
    expect(forbidden.status).toBe(403);

    const listed = await https(f.emulator, `${f.emulator.url}/admin/signingKeys`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const next = (listed.json().value as { kid: string; use: string }[]).find((k) => k.use === 'next')!;
    const res = await https(f.emulator, url, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(res.status, res.text).toBe(200);
    expect(res.json().kid).toBe(next.kid);
    const uses = (res.json().value as { use: string }[]).map((k) => k.use);
    expect(uses.filter((u) => u === 'active')).toHaveLength(1);
    expect(uses.filter((u) => u === 'next')).toHaveLength(1);
    // The admin token was signed before this rotation and still works.
    expect(
      (
        await https(f.emulator, `${f.emulator.graphUrl}/applications`, {
          headers: { authorization: `Bearer ${adminToken}` },
        })
      ).status,
    ).toBe(200);
    // GraphClient offers the same.
    const viaClient = await f.graph.rotateSigningKey();
    expect(kids(await jwksNow())).toContain(viaClient.kid);
  });
});

describe('signing keys in the state file', () => {
  it('rotation survives a restart; an older state file without key roles gets a published next key', async () => {
    const dir = tempStateDir();
    try {
      const first = await startEmulator({ stateDir: dir });
      const { kid } = await first.rotateSigningKey();
      const jwksBefore = kids((await https(first, first.jwksUri)).json() as unknown as JSONWebKeySet);
      await first.close();

      const second = await startEmulator({ stateDir: dir });
      // Same keys (the issuer inside each entry follows the new port).
      expect(kids((await https(second, second.jwksUri)).json() as unknown as JSONWebKeySet)).toEqual(
        jwksBefore,
      );
      const graph = await GraphClient.connect(second);
      expect(decodeJwt(await graph.accessToken()).header.kid).toBe(kid);
      graph.close();
      await second.close();

      // A state file from before rotation existed: one key, no `use`.
      const state = JSON.parse(readFileSync(statePath(dir), 'utf8')) as EmulatorState;
      const active = state.signingKeys.find((k) => k.use === 'active')!;
      const { use: _u, retireAfter: _r, ...legacy } = active;
      writeFileSync(statePath(dir), JSON.stringify({ ...state, signingKeys: [legacy] }));
      const third = await startEmulator({ stateDir: dir });
      const keys = (await https(third, third.jwksUri)).json().keys as { kid: string }[];
      expect(keys).toHaveLength(2);
      expect(keys[0]!.kid).toBe(active.kid);
      await third.close();
      const saved = JSON.parse(readFileSync(statePath(dir), 'utf8')) as EmulatorState;
      expect(saved.signingKeys.map((k) => k.use)).toEqual(['active', 'next']);
    } finally {
      removeDir(dir);
    }
  });

  it('refuses a state file with two active keys, naming the file', async () => {
    const dir = tempStateDir();
    try {
      const first = await startEmulator({ stateDir: dir });
      await first.close();
      const state = JSON.parse(readFileSync(statePath(dir), 'utf8')) as EmulatorState;
      writeFileSync(
        statePath(dir),
        JSON.stringify({ ...state, signingKeys: state.signingKeys.map((k) => ({ ...k, use: 'active' })) }),
      );
      await expect(startEmulator({ stateDir: dir })).rejects.toThrow(statePath(dir));
    } finally {
      removeDir(dir);
    }
  });
});
