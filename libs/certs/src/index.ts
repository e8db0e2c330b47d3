import forge from 'node-forge';
export const x = (): string => forge.md.sha1.create().digest().toHex();
