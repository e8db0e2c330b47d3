import { Controller, Get } from '@nestjs/common';
import { Public } from '../auth/auth-decorators';

@Controller('health')
export class HealthController {
  /** Liveness, no token needed. */
  @Public()
  @Get()
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }
}
