/** Bodies of the health routes, for the OpenAPI document. */
import { ApiProperty } from '@nestjs/swagger';

export class Liveness {
  @ApiProperty({ enum: ['ok'] })
  status!: 'ok';
}

export class Readiness {
  @ApiProperty({ enum: ['ready'] })
  status!: 'ready';
  @ApiProperty({ enum: ['loaded'] })
  signingKeys!: 'loaded';
}

/** The 503 of `GET /ready`: the API's error shape with the readiness fields. */
export class NotReady {
  @ApiProperty({ enum: [503] })
  statusCode!: 503;
  @ApiProperty({ enum: ['Service Unavailable'] })
  error!: 'Service Unavailable';
  @ApiProperty({ enum: ['ERR_NOT_READY'] })
  code!: 'ERR_NOT_READY';
  @ApiProperty({ enum: ['not_ready'] })
  status!: 'not_ready';
  @ApiProperty({ enum: ['unavailable'] })
  signingKeys!: 'unavailable';
  @ApiProperty()
  message!: string;
  @ApiProperty({ description: 'the OpenID metadata or JWKS URL that could not be read' })
  failingUrl!: string;
}
