/** An order the partner may read: the small real resource behind the protected routes. */
import { ApiProperty } from '@nestjs/swagger';

export type OrderStatus = 'received' | 'shipped' | 'delivered';

export class Money {
  @ApiProperty({ example: '129.90', description: 'decimal amount, up to 2 decimals' })
  amount!: string;
  @ApiProperty({ example: 'EUR', description: 'ISO 4217 code' })
  currency!: string;
}

export class Order {
  @ApiProperty({ example: 'ord-1001' })
  id!: string;
  @ApiProperty({ enum: ['received', 'shipped', 'delivered'] })
  status!: OrderStatus;
  @ApiProperty({ example: 'PO-7731' })
  customerReference!: string;
  @ApiProperty({ type: Money })
  total!: Money;
  @ApiProperty({ example: '2025-01-06T09:12:00Z' })
  createdAt!: string;
}

/** Who called, as shown back to the caller (what the token said, never the token). */
export class OrdersCaller {
  @ApiProperty()
  clientAppId!: string;
  @ApiProperty()
  tenantId!: string;
  @ApiProperty({ type: [String] })
  roles!: string[];
  @ApiProperty({ enum: ['certificate', 'secret', 'public'] })
  clientAuthentication!: 'certificate' | 'secret' | 'public';
}

export class OrdersResponse {
  @ApiProperty({ type: [Order] })
  orders!: Order[];
  @ApiProperty({ type: OrdersCaller })
  caller!: OrdersCaller;
}

/** The body of `POST /orders`. */
export class CreateOrderInput {
  @ApiProperty({ example: 'PO-7750', description: '1–64 characters: letters, digits, space, - _ . / #' })
  customerReference!: string;
  @ApiProperty({ type: Money })
  total!: Money;
}
