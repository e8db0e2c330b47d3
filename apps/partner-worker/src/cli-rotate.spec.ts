/**
 * `cert rotate` on the command line against the real emulator's Graph addKey/removeKey (the
 * rotation itself is tested in libs/partner-client, rotation.spec.ts).
 */
import { describe, expect, it } from 'vitest';
import { runCli, type CliIo } from './cli';
import { startCli, until, useFacadeFixture } from './facade.test-helpers';

describe('cert rotate', () => {
  const f = useFacadeFixture();

  it('cert rotate (CLI): rotates, keeps the key size, waits --grace-seconds before removeKey, prints the rotation event without key material, and the next token uses the new certificate', async () => {
    const { store, credential: first, keyId } = await f.registeredCertificate('cli', { keySize: 3072 });
    const env = f.env(store.directory, {
      PARTNER_APP_OBJECT_ID: f.partner.objectId,
      PARTNER_GRAPH_URL: f.emulator.graphUrl,
    });
    const out: string[] = [];
    const err: string[] = [];
    const io: CliIo = { env, cwd: f.dir.path, stdout: (l) => out.push(l), stderr: (l) => err.push(l) };
    // A rotation never weakens the key: 2048 for a 3072-bit key is refused before anything changes.
    expect(await runCli(['cert', 'rotate', '--key-size', '2048'], io)).toBe(1);
    expect(err.splice(0).join('\n')).toMatch(/--key-size 2048 is smaller than the current key \(3072 bits\)/);
    expect(store.load().certificate.thumbprints).toEqual(first.certificate.thumbprints);
    const bad = await runCli(['cert', 'rotate', '--grace-seconds', 'soon'], io);
    expect(bad).toBe(2);
    expect(err.splice(0).join('\n')).toMatch(
      /--grace-seconds must be a whole number from 0 to 3600, got "soon"/,
    );
    const stamped: { line: string; at: number }[] = [];
    const code = await runCli(['cert', 'rotate', '--old-key-id', keyId, '--grace-seconds', '1', '--json'], {
      ...io,
      stderr: (l) => (err.push(l), stamped.push({ line: l, at: Date.now() })),
    });
    expect(err.join('\n')).not.toMatch(/error/);
    expect(code).toBe(0);
    // removeKey came at least the grace period after the switch.
    const switched = stamped.find((s) => /switched to the new certificate/.test(s.line));
    const removed = stamped.find((s) => /removed/i.test(s.line) && s !== switched);
    expect(switched, err.join('\n')).toBeDefined();
    expect(removed, err.join('\n')).toBeDefined();
    expect(removed!.at - switched!.at).toBeGreaterThanOrEqual(950);
    expect(out.join('\n')).not.toMatch(/PRIVATE KEY/);
    const event = JSON.parse(out[0]!) as Record<string, unknown>;
    expect(event).toMatchObject({ event: 'rotation', status: 'rotated', removedKeyId: keyId });
    expect(event).not.toHaveProperty('recovered');
    const rotated = store.load();
    expect(rotated.certificate.publicKey.asymmetricKeyDetails?.modulusLength).toBe(3072);
    expect((event.certificate as { thumbprints: { sha256Hex: string } }).thumbprints.sha256Hex).toBe(
      rotated.certificate.thumbprints.sha256Hex,
    );
    expect(await runCli(['token', 'get'], { ...io, stdout: () => {} })).toBe(0);
  }, 60_000);

  it('one rotation at a time: a second cert rotate while one waits out its grace period is refused naming its pid, and changes nothing', async () => {
    const { store, keyId } = await f.registeredCertificate('cli-lock');
    const env = f.env(store.directory, {
      PARTNER_APP_OBJECT_ID: f.partner.objectId,
      PARTNER_GRAPH_URL: f.emulator.graphUrl,
    });
    const first = startCli(
      ['cert', 'rotate', '--old-key-id', keyId, '--grace-seconds', '3', '--json'],
      env,
      f.dir.path,
    );
    await until('the first rotation to switch', () => first.stderr.some((l) => /switched/.test(l)));
    const switchedTo = store.currentGeneration();
    const err: string[] = [];
    const io: CliIo = { env, cwd: f.dir.path, stdout: () => {}, stderr: (l) => err.push(l) };
    expect(await runCli(['cert', 'rotate', '--json'], io)).toBe(1);
    expect(err.join('\n')).toMatch(
      new RegExp(`a rotation by process ${first.child.pid} is under way on .*; nothing was changed`),
    );
    expect(store.currentGeneration()).toBe(switchedTo);
    expect(await first.exited).toBe(0);
    expect(JSON.parse(first.stdout[0]!)).toMatchObject({ status: 'rotated', removedKeyId: keyId });
  }, 60_000);
});
