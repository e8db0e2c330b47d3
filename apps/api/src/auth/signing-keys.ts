/**
 * The signing keys of every configured tenant, one {@link SigningKeyStore} each, fetched
 * with jwks-rsa over HTTPS (trusting ENTRA_CA_FILE besides the system roots). Keys are
 * fetched on the first token to verify or the first readiness probe, whichever comes first.
 */
import type { KeyObject } from 'node:crypto';
import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { Inject, Injectable, Logger, OnModuleDestroy } from '@nestjs/common';
import { JwksClient } from 'jwks-rsa';
import type { ApiConfig } from '../config/api-config';
import { entraJwksUri, readCaFile } from '../config/api-config';
import { API_CONFIG } from '../config/api-config.token';
import { UnknownSigningKeyError } from './auth-failure';
import { SigningKeyStore } from './signing-key-store';
import { VerifiedTokenCache } from './verified-token-cache';

@Injectable()
export class SigningKeys implements OnModuleDestroy {
  private readonly logger = new Logger(SigningKeys.name);
  private readonly stores = new Map<string, SigningKeyStore>();
  private readonly requestAgent: Agent | undefined;

  constructor(@Inject(API_CONFIG) config: ApiConfig, @Inject(VerifiedTokenCache) cache: VerifiedTokenCache) {
    const ca = readCaFile(config);
    // The extra CA is added to the system roots, so real Entra ID stays trusted too.
    const requestAgent = (this.requestAgent = ca
      ? new Agent({ ca: [...rootCertificates, ca], keepAlive: true })
      : undefined);
    for (const tenantId of config.tenantIds) {
      const client = new JwksClient({
        jwksUri: entraJwksUri(config, tenantId),
        cache: false,
        timeout: 10_000,
        ...(requestAgent ? { requestAgent } : {}),
      });
      const store = new SigningKeyStore(client, {
        onKeysRemoved: (kids) => {
          cache.forgetKeys(tenantId, kids);
          this.logger.log({ event: 'signing_keys_removed', tenantId, kids });
        },
        onRefreshFailed: (error) =>
          this.logger.warn({ event: 'signing_keys_refresh_failed', tenantId, cause: error.message }),
      });
      this.stores.set(tenantId, store);
    }
  }

  onModuleDestroy(): void {
    this.requestAgent?.destroy();
  }

  /** The public key of `kid` in the tenant's JWKS. */
  keyFor(tenantId: string, kid: string): Promise<KeyObject> {
    const store = this.stores.get(tenantId);
    if (!store) return Promise.reject(new UnknownSigningKeyError('tenant not configured'));
    return store.keyFor(kid);
  }

  /** Whether every tenant's keys are loaded. */
  get loaded(): boolean {
    return [...this.stores.values()].every((store) => store.loaded);
  }

  /** Loads the keys of tenants that have none yet; true when all are loaded. */
  async ensureLoaded(): Promise<boolean> {
    await Promise.allSettled(
      [...this.stores.values()].filter((store) => !store.loaded).map((store) => store.refresh()),
    );
    return this.loaded;
  }
}
