import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiOkResponse, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import { Public } from '../auth/auth-decorators';
import { SigningKeys } from '../auth/signing-keys';
import { Liveness, NotReady, Readiness } from './health-status';

@ApiTags('health')
@Controller()
export class HealthController {
  constructor(@Inject(SigningKeys) private readonly signingKeys: SigningKeys) {}

  /** Liveness, no token needed. */
  @Public()
  @ApiOkResponse({ description: 'the process is up', type: Liveness })
  @Get('health')
  health(): Liveness {
    return { status: 'ok' };
  }

  /** Readiness: the signing keys of every tenant are loaded (fetched now if they are not yet). */
  @Public()
  @ApiOkResponse({ description: 'signing keys loaded', type: Readiness })
  @ApiServiceUnavailableResponse({
    description: 'signing keys not loaded (JWKS unreachable)',
    type: NotReady,
  })
  @Get('ready')
  async ready(): Promise<Readiness> {
    if (await this.signingKeys.ensureLoaded()) return { status: 'ready', signingKeys: 'loaded' };
    const body: NotReady = {
      statusCode: 503,
      error: 'Service Unavailable',
      code: 'ERR_NOT_READY',
      status: 'not_ready',
      signingKeys: 'unavailable',
      message: 'signing keys are not loaded',
    };
    throw new ServiceUnavailableException(body);
  }
}
