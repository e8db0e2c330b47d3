/**
 * Validates the body of `POST /orders` by hand (no class-validator): every problem is listed,
 * each naming its field, and unknown fields are refused rather than silently dropped.
 *
 * @example
 *   {"statusCode":400,"error":"Bad Request","code":"ERR_ORDER_INVALID","message":"invalid order","errors":["total.currency must be …"]}
 */
import { BadRequestException, Injectable, PipeTransform } from '@nestjs/common';
import { ORDER_RULES, type CreateOrderInput } from './order';

const { customerReference: REFERENCE, amount: AMOUNT, currency: CURRENCY } = ORDER_RULES;

@Injectable()
export class CreateOrderPipe implements PipeTransform<unknown, CreateOrderInput> {
  transform(body: unknown): CreateOrderInput {
    const errors: string[] = [];
    if (!isObject(body)) throw invalid(['body must be a JSON object']);
    unknownFields(body, ['customerReference', 'total'], '', errors);
    const { customerReference, total } = body;
    if (typeof customerReference !== 'string' || !REFERENCE.test(customerReference)) {
      errors.push('customerReference must be a string of 1 to 64 letters, digits, spaces or - _ . / #');
    }
    if (!isObject(total)) {
      errors.push('total must be an object with amount and currency');
    } else {
      unknownFields(total, ['amount', 'currency'], 'total.', errors);
      if (typeof total['amount'] !== 'string' || !AMOUNT.test(total['amount'])) {
        errors.push(
          'total.amount must be a decimal string with at most 9 digits before and 2 after the point, e.g. "129.90"',
        );
      }
      if (typeof total['currency'] !== 'string' || !CURRENCY.test(total['currency']))
        errors.push('total.currency must be a 3-letter ISO 4217 code, e.g. "EUR"');
    }
    if (errors.length > 0) throw invalid(errors);
    const money = total as { amount: string; currency: string };
    return {
      customerReference: customerReference as string,
      total: { amount: money.amount, currency: money.currency },
    };
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownFields(
  value: Record<string, unknown>,
  known: string[],
  prefix: string,
  errors: string[],
): void {
  for (const name of Object.keys(value))
    if (!known.includes(name)) errors.push(`${prefix}${name.slice(0, 32)} is not a known field`);
}

function invalid(errors: string[]): BadRequestException {
  return new BadRequestException({
    statusCode: 400,
    error: 'Bad Request',
    code: 'ERR_ORDER_INVALID',
    message: 'invalid order',
    errors,
  });
}
