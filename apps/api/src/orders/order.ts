/** An order the partner may read: the small real resource behind the protected routes. */
import { ApiProperty } from '@nestjs/swagger';

export type OrderStatus = 'received' | 'shipped' | 'delivered';

/** What CreateOrderPipe accepts, also published as the schema's `pattern`s. */
export const ORDER_RULES = {
  /**
   * Ids are `ord-` and letters, digits, `-`. The published pattern allows no character that
   * would need percent-encoding in a path, nor a dot-segment: the gateway refuses an encoded `/`,
   * `\` or NUL and resolves `.`/`..`, so such an id could never reach the API as itself.
   */
  id: /^[A-Za-z0-9_-]{1,100}$/,
  customerReference: /^[A-Za-z0-9 _\-./#]{1,64}$/,
  amount: /^(0|[1-9]\d{0,8})(\.\d{1,2})?$/,
  currency: /^[A-Z]{3}$/,
} as const;

export class Money {
  @ApiProperty({
    example: '129.90',
    description: 'decimal amount: at most 9 digits before and 2 after the point',
    pattern: ORDER_RULES.amount.source,
    maxLength: 12,
  })
  amount!: string;
  @ApiProperty({ example: 'EUR', description: 'ISO 4217 code', pattern: ORDER_RULES.currency.source })
  currency!: string;
}

const CUSTOMER_REFERENCE = {
  example: 'PO-7750',
  description: '1–64 characters: letters, digits, space, - _ . / #',
  pattern: ORDER_RULES.customerReference.source,
  minLength: 1,
  maxLength: 64,
} as const;

export class Order {
  @ApiProperty({ example: 'ord-1001' })
  id!: string;
  @ApiProperty({ enum: ['received', 'shipped', 'delivered'] })
  status!: OrderStatus;
  @ApiProperty({ ...CUSTOMER_REFERENCE, example: 'PO-7731' })
  customerReference!: string;
  @ApiProperty({ type: Money })
  total!: Money;
  @ApiProperty({ example: '2025-01-06T09:12:00Z', format: 'date-time' })
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
  @ApiProperty(CUSTOMER_REFERENCE)
  customerReference!: string;
  @ApiProperty({ type: Money })
  total!: Money;
}
