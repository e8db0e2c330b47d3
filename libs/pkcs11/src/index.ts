export { Pkcs11Error, codeOfCkr, type Pkcs11ErrorCode } from './errors';
export { formatPkcs11Uri, parsePkcs11Uri, type Pkcs11ObjectType, type Pkcs11Uri } from './uri';
export { resolvePkcs11Settings, type Pkcs11Settings } from './settings';
export { Pkcs11Token, type Pkcs11KeyAttributes } from './token';
