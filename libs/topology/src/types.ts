/** The topology as the loader returns it: defaults filled in, every path absolute. */

export interface TopologyAppRole {
  value: string;
  displayName: string;
  description: string;
}

export interface TopologyOperation {
  method: string;
  urlTemplate: string;
  /** Absolute path of the operation's APIM policy file. */
  policy: string;
}

export interface TopologyApi {
  name: string;
  displayName: string;
  identifierUri: string;
  accessTokenVersion: 1 | 2;
  appRoles: TopologyAppRole[];
  /** Absolute path of the API's APIM policy file. */
  policy: string;
  operations: TopologyOperation[];
}

export interface PartnerCertificateSettings {
  commonName: string;
  keySize: 2048 | 3072 | 4096;
  validityDays: number;
  /** Absolute path of the partner's public certificate (DER `.cer`), when the file names one. */
  cerFile?: string;
}

export interface TopologyPartner {
  name: string;
  displayName: string;
  certificate: PartnerCertificateSettings;
  /** api name → role values */
  roles: Record<string, string[]>;
}

export interface Topology {
  apis: TopologyApi[];
  partners: TopologyPartner[];
}

export interface LoadedTopology {
  /** Absolute path of the topology file. */
  file: string;
  topology: Topology;
}
