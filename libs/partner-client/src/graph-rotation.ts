/**
 * Rotation through Graph addKey/removeKey with the partner's own Graph token (client credentials
 * with its current certificate, through the same token pipeline as every other token): the CLI's
 * `cert rotate`, and the facade's POST /rotate, which switches the running worker in process.
 */
import type { RsaKeySize } from '@certflow/certs';
import { ApiClient } from './api-client';
import type { CertificateStore, PartnerCredential } from './certificate-store';
import type { RotationConfig } from './config';
import { createTokenPipeline } from './pipeline';
import { rotateCertificate, type RotationResult } from './rotation';

export interface GraphRotationOptions {
  days?: number;
  commonName?: string;
  oldKeyId?: string;
  keySize?: RsaKeySize;
  graceMs?: number;
  onSwitch?: (next: PartnerCredential) => void;
  log: (message: string) => void;
}

export async function rotateWithGraph(
  config: RotationConfig,
  store: CertificateStore,
  current: PartnerCredential,
  options: GraphRotationOptions,
): Promise<RotationResult> {
  // The Graph token is this rotation's own: not shared with other replicas, not kept after it.
  const pipeline = createTokenPipeline({
    config: { ...config, scope: config.graphScope, sharedCache: undefined },
    credential: current,
    log: options.log,
  });
  const graph = new ApiClient({
    baseUrl: config.graphUrl,
    tokens: pipeline.tokens,
    ...(config.caPem ? { ca: config.caPem } : {}),
  });
  try {
    return await rotateCertificate({
      store,
      current,
      applicationObjectId: config.applicationObjectId,
      graph,
      ...(options.days ? { days: options.days } : {}),
      ...(options.commonName ? { commonName: options.commonName } : {}),
      ...(options.oldKeyId ? { oldKeyId: options.oldKeyId } : {}),
      ...(options.keySize ? { keySize: options.keySize } : {}),
      ...(options.graceMs ? { graceMs: options.graceMs } : {}),
      ...(config.keyPassphrase ? { passphrase: config.keyPassphrase } : {}),
      ...(options.onSwitch ? { onSwitch: options.onSwitch } : {}),
      log: options.log,
    });
  } finally {
    graph.close();
    pipeline.close();
  }
}
