/** Finding the one token a URI names among the slots a module offers. */
import * as pkcs11js from 'pkcs11js';
import { Pkcs11Error, cryptoki, quote } from './errors';
import type { LoadedModule } from './module';
import type { Pkcs11Uri } from './uri';

export interface FoundToken {
  slot: Buffer;
  slotId: number;
  label: string;
  manufacturer: string;
  model: string;
  serial: string;
  flags: number;
  /** The PIN lengths the token accepts (ulMinPinLen, ulMaxPinLen). */
  minPinLen: number;
  maxPinLen: number;
}

/** Token info strings are blank padded (and some modules pad with NULs). */
const unpad = (text: string) => text.replace(/[\s\0]+$/, '');

function slotIdOf(slot: Buffer): number {
  return Number(slot.length >= 8 ? slot.readBigUInt64LE(0) : BigInt(slot.readUInt32LE(0)));
}

function criteriaOf(uri: Pkcs11Uri): string {
  const parts: string[] = [];
  if (uri.token !== undefined) parts.push(`token=${quote(uri.token)}`);
  if (uri.manufacturer !== undefined) parts.push(`manufacturer=${quote(uri.manufacturer)}`);
  if (uri.serial !== undefined) parts.push(`serial=${quote(uri.serial)}`);
  if (uri.model !== undefined) parts.push(`model=${quote(uri.model)}`);
  if (uri.slotId !== undefined) parts.push(`slot-id=${uri.slotId}`);
  return parts.length ? parts.join(';') : '(no token attributes)';
}

const listed = (tokens: FoundToken[]) =>
  tokens
    .map((t) => `${quote(t.label)} (serial ${t.serial ? quote(t.serial) : '-'}, slot-id ${t.slotId})`)
    .join(', ');

/** The initialised tokens present in the module's slots. */
function tokensOf(module: LoadedModule): FoundToken[] {
  const { pkcs11 } = module;
  const slots = cryptoki(`listing the slots of PKCS#11 module ${module.path}`, () =>
    pkcs11.C_GetSlotList(true),
  );
  return slots
    .map((slot) => {
      const info = cryptoki(`reading the token in slot ${slotIdOf(slot)} of ${module.path}`, () =>
        pkcs11.C_GetTokenInfo(slot),
      );
      return {
        slot,
        slotId: slotIdOf(slot),
        label: unpad(info.label),
        manufacturer: unpad(info.manufacturerID),
        model: unpad(info.model),
        serial: unpad(info.serialNumber),
        flags: info.flags,
        minPinLen: info.minPinLen,
        maxPinLen: info.maxPinLen,
      };
    })
    .filter((t) => (t.flags & pkcs11js.CKF_TOKEN_INITIALIZED) !== 0);
}

export function findToken(module: LoadedModule, uri: Pkcs11Uri): FoundToken {
  const tokens = tokensOf(module);
  const matching = tokens.filter(
    (t) =>
      (uri.token === undefined || t.label === uri.token) &&
      (uri.manufacturer === undefined || t.manufacturer === uri.manufacturer) &&
      (uri.serial === undefined || t.serial === uri.serial) &&
      (uri.model === undefined || t.model === uri.model) &&
      (uri.slotId === undefined || t.slotId === uri.slotId),
  );
  if (matching.length === 1) return matching[0]!;
  const present = tokens.length ? `tokens present: ${listed(tokens)}` : 'no initialised token is present';
  if (matching.length === 0) {
    throw new Pkcs11Error(
      'ERR_PKCS11_TOKEN_NOT_FOUND',
      `no token in PKCS#11 module ${module.path} matches ${criteriaOf(uri)}; ${present}`,
    );
  }
  throw new Pkcs11Error(
    'ERR_PKCS11_TOKEN_NOT_FOUND',
    `${matching.length} tokens in PKCS#11 module ${module.path} match ${criteriaOf(uri)} (${listed(matching)}); name one with token=, serial= or slot-id=`,
  );
}
