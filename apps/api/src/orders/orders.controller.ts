import { Body, Controller, Get, HttpCode, Inject, Param, Post } from '@nestjs/common';
import {
  ApiBadRequestResponse,
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNotFoundResponse,
  ApiOkResponse,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import type { AppPrincipal } from '@certflow/claims';
import { CurrentPrincipal } from '@certflow/nest-entra-auth';
import { AppRole, RequireRoles } from '../app-roles';
import { API_ERROR_REF } from '../openapi/error-responses';
import { OPENAPI_BEARER_SCHEME } from '../openapi/openapi';
import { CreateOrderInput, Order, ORDER_RULES, OrdersResponse } from './order';
import { CreateOrderPipe } from './create-order.pipe';
import { OrdersService } from './orders.service';

@ApiTags('orders')
// 401, 403 and 503 of the global guards, and the gateway's answers: error-responses.ts.
@ApiBearerAuth(OPENAPI_BEARER_SCHEME)
@Controller('orders')
export class OrdersController {
  constructor(@Inject(OrdersService) private readonly orders: OrdersService) {}

  @RequireRoles(AppRole.OrdersRead)
  @ApiOkResponse({ type: OrdersResponse, description: `app role ${AppRole.OrdersRead}` })
  @Get()
  list(@CurrentPrincipal() principal: AppPrincipal): OrdersResponse {
    return this.orders.listFor(principal);
  }

  @RequireRoles(AppRole.OrdersRead)
  @ApiOkResponse({ type: Order, description: `app role ${AppRole.OrdersRead}` })
  @ApiNotFoundResponse({ description: 'API: ERR_ORDER_NOT_FOUND', schema: { $ref: API_ERROR_REF } })
  @ApiParam({
    name: 'id',
    example: 'ord-1001',
    schema: { type: 'string', pattern: ORDER_RULES.id.source },
  })
  @Get(':id')
  get(@Param('id') id: string): Order {
    return this.orders.get(id);
  }

  @RequireRoles(AppRole.OrdersWrite)
  @ApiCreatedResponse({ type: Order, description: `app role ${AppRole.OrdersWrite}` })
  @ApiBadRequestResponse({
    description: 'API: ERR_ORDER_INVALID, with one message per problem in `errors`',
    schema: { $ref: API_ERROR_REF },
  })
  @HttpCode(201)
  @Post()
  create(@Body(CreateOrderPipe) input: CreateOrderInput): Order {
    return this.orders.create(input);
  }
}
