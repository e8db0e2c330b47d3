import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import { EntraAuthority, Public } from '@certflow/nest-entra-auth';
import { Liveness, NotReady, Readiness } from './health-status';

@ApiTags('health')
@Controller()
export class HealthController {
  constructor(@Inject(EntraAuthority) private readonly authority: EntraAuthority) {}

  /** Liveness, no token needed. */
  @Public()
  @ApiOkResponse({ description: 'the process is up', type: Liveness })
  @Get('health')
  health(): Liveness {
    return { status: 'ok' };
  }

  /**
   * Readiness: every tenant's OpenID metadata has been read and its signing keys are loaded
   * (fetched now if they are not yet); otherwise 503 naming the URL that failed.
   */
  @Public()
  @ApiOkResponse({ description: 'signing keys loaded', type: Readiness })
  @ApiServiceUnavailableResponse({
    description: 'OpenID metadata or signing keys not loaded (the URL that failed is named)',
    type: NotReady,
  })
  @Get('ready')
  async ready(): Promise<Readiness> {
    const readiness = await this.authority.readiness();
    if (readiness.ready) return { status: 'ready', signingKeys: 'loaded' };
    const what = readiness.missing === 'metadata' ? 'OpenID metadata' : 'signing keys';
    const body: NotReady = {
      statusCode: 503,
      error: 'Service Unavailable',
      code: 'ERR_NOT_READY',
      status: 'not_ready',
      signingKeys: 'unavailable',
      message: `signing keys are not loaded: ${what} could not be read from ${readiness.url} (${readiness.reason})`,
      failingUrl: readiness.url,
    };
    throw new ServiceUnavailableException(body);
  }
}
