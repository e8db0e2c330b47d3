/**
 * `cert rotate`: the next certificate registered with Graph addKey, switched to, the old one
 * removed; crash-safe (libs/partner-client rotation.ts): a rerun finishes or undoes a rotation
 * that was interrupted, and says so (`recovered` in the JSON event).
 */
import { isGuid } from '@certflow/claims';
import {
  CertificateStore,
  DEFAULT_VALIDITY_DAYS,
  MAX_VALIDITY_DAYS,
  readRotationConfig,
  rotateWithGraph,
  summarize,
} from '@certflow/partner-client';
import { command, JSON_OPTION, keySize, logTo, positiveInt, UsageError } from './command';
import { COMMON_NAME_OPTION, KEY_SIZE_OPTION } from './cert';

export const certRotate = command({
  name: 'cert rotate',
  usage: `  cert rotate [--days N] [--common-name CN] [--old-key-id GUID] [--key-size N]
              [--grace-seconds N] [--json]
                      make the next certificate (key size: the current one's; a key in a PKCS#11
                      token gets its successor in the same token), register it with Graph addKey
                      (proof signed by the current one, with the partner's own Graph token),
                      switch to it and, --grace-seconds after the switch (default 0), remove the
                      old one with removeKey (its keyId from partner.key-id or --old-key-id).
                      Each step is journaled in rotation.json first: after a crash, run it again
                      and it finishes or undoes the interrupted rotation ("recovered": the step it
                      was at). Where addKey is refused, names the .cer to send; once the API owner
                      has uploaded it, run it again to switch.
                      Needs PARTNER_APP_OBJECT_ID (and PARTNER_GRAPH_URL for the emulator)`,
  options: {
    days: { type: 'string' },
    ...COMMON_NAME_OPTION,
    'old-key-id': { type: 'string' },
    ...KEY_SIZE_OPTION,
    'grace-seconds': { type: 'string' },
    ...JSON_OPTION,
  },
  async run({ io, values, emit }) {
    const days = positiveInt('days', values.days, DEFAULT_VALIDITY_DAYS, MAX_VALIDITY_DAYS);
    const oldKeyId = values['old-key-id'];
    if (oldKeyId !== undefined && !isGuid(oldKeyId))
      throw new UsageError(`--old-key-id must be a GUID, got "${oldKeyId}"`);
    const size = keySize(values['key-size']);
    const graceRaw = values['grace-seconds'];
    if (graceRaw !== undefined && (!/^\d+$/.test(graceRaw) || Number(graceRaw) > 3_600))
      throw new UsageError(`--grace-seconds must be a whole number from 0 to 3600, got "${graceRaw}"`);
    const graceSeconds = graceRaw === undefined ? 0 : Number(graceRaw);
    const config = readRotationConfig(io.env, io.cwd);
    const result = await rotateWithGraph(config, new CertificateStore(config.certDir), undefined, {
      days,
      ...(values['common-name'] ? { commonName: values['common-name'] } : {}),
      ...(oldKeyId ? { oldKeyId } : {}),
      ...(size ? { keySize: size } : {}),
      ...(graceSeconds ? { graceMs: graceSeconds * 1000 } : {}),
      log: logTo(io),
    });
    if (values.json)
      emit({
        event: 'rotation',
        ...result,
        ...(result.status === 'rotated'
          ? { credential: undefined, certificate: summarize(result.credential) }
          : {}),
      });
    else io.stdout(result.message);
    if (result.status === 'refused') {
      io.stderr(`partner-worker: error: ${result.message}`);
      return 1;
    }
    return 0;
  },
});
