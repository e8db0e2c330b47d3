import { Injectable, NotFoundException } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { AppPrincipal } from '@certflow/claims';
import type { CreateOrderInput, Order, OrdersCaller, OrdersResponse } from './order';

/** In-memory sample; a real API would read a store filtered by the caller. */
const SAMPLE_ORDERS: readonly Order[] = [
  {
    id: 'ord-1001',
    status: 'delivered',
    customerReference: 'PO-7731',
    total: { amount: '129.90', currency: 'EUR' },
    createdAt: '2025-01-06T09:12:00Z',
  },
  {
    id: 'ord-1002',
    status: 'shipped',
    customerReference: 'PO-7735',
    total: { amount: '48.00', currency: 'EUR' },
    createdAt: '2025-01-07T14:40:00Z',
  },
  {
    id: 'ord-1003',
    status: 'received',
    customerReference: 'PO-7742',
    total: { amount: '310.25', currency: 'EUR' },
    createdAt: '2025-01-08T08:05:00Z',
  },
];

/** Orders kept by one API instance, bounded so that a partner cannot exhaust its memory. */
export const MAX_ORDERS = 10_000;

@Injectable()
export class OrdersService {
  private readonly orders = new Map<string, Order>(SAMPLE_ORDERS.map((order) => [order.id, copy(order)]));

  /** The orders visible to the caller, with who the API believes the caller is. */
  listFor(principal: AppPrincipal): OrdersResponse {
    return { orders: [...this.orders.values()].map(copy), caller: callerOf(principal) };
  }

  get(id: string): Order {
    const order = this.orders.get(id);
    if (!order)
      throw new NotFoundException({
        statusCode: 404,
        error: 'Not Found',
        code: 'ERR_ORDER_NOT_FOUND',
        message: 'no order with this id',
      });
    return copy(order);
  }

  create(input: CreateOrderInput): Order {
    if (this.orders.size >= MAX_ORDERS) {
      // The oldest created order makes room: the sample store must stay bounded.
      this.orders.delete(this.orders.keys().next().value as string);
    }
    const order: Order = {
      id: `ord-${randomUUID()}`,
      status: 'received',
      customerReference: input.customerReference,
      total: { ...input.total },
      createdAt: new Date().toISOString(),
    };
    this.orders.set(order.id, order);
    return copy(order);
  }
}

function copy(order: Order): Order {
  return { ...order, total: { ...order.total } };
}

function callerOf(principal: AppPrincipal): OrdersCaller {
  return {
    clientAppId: principal.clientAppId,
    tenantId: principal.tenantId,
    roles: [...principal.roles],
    clientAuthentication: principal.clientAuthentication,
  };
}
