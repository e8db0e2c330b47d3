import { Body, Controller, Get, HttpCode, Inject, Param, Post } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiForbiddenResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiTags,
  ApiUnauthorizedResponse,
} from '@nestjs/swagger';
import type { AppPrincipal } from '@certflow/claims';
import { CurrentPrincipal, RequireAppRoles } from '../auth/auth-decorators';
import { OPENAPI_BEARER_SCHEME } from '../openapi/openapi';
import { CreateOrderInput, Order, OrdersResponse } from './order';
import { CreateOrderPipe } from './create-order.pipe';
import { OrdersService } from './orders.service';

@ApiTags('orders')
@ApiBearerAuth(OPENAPI_BEARER_SCHEME)
@ApiUnauthorizedResponse({ description: 'no valid Entra access token (code ERR_TOKEN_…)' })
@ApiForbiddenResponse({
  description:
    'valid token, caller not allowed (ERR_APP_ROLE_MISSING, ERR_CLIENT_NOT_ALLOWED, ERR_CLIENT_CERTIFICATE_REQUIRED)',
})
@Controller('orders')
export class OrdersController {
  constructor(@Inject(OrdersService) private readonly orders: OrdersService) {}

  @RequireAppRoles('Orders.Read')
  @ApiOkResponse({ type: OrdersResponse, description: 'app role Orders.Read' })
  @Get()
  list(@CurrentPrincipal() principal: AppPrincipal): OrdersResponse {
    return this.orders.listFor(principal);
  }

  @RequireAppRoles('Orders.Read')
  @ApiOkResponse({ type: Order, description: 'app role Orders.Read' })
  @ApiNotFoundResponse({ description: 'ERR_ORDER_NOT_FOUND' })
  @Get(':id')
  get(@Param('id') id: string): Order {
    return this.orders.get(id);
  }

  @RequireAppRoles('Orders.Write')
  @ApiCreatedResponse({ type: Order, description: 'app role Orders.Write' })
  @ApiBadRequestResponse({ description: 'ERR_ORDER_INVALID, with one message per problem in `errors`' })
  @HttpCode(201)
  @Post()
  create(@Body(CreateOrderPipe) input: CreateOrderInput): Order {
    return this.orders.create(input);
  }
}
