// Loads an operator-provided certificate (config `tls`), checking at start-up what would otherwise
// fail at the first handshake: readable files, real PEM, key matching the certificate, validity
// dates, and that ca_file issued the chain.
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { type ConfigError, fileReason, type Locate } from '../config/errors.js';
import type { Config } from '../config/schema.js';

export interface ConfiguredTls {
  certPem: string;
  keyPem: string;
  /** the CA handed to clients in each session; null when the certificate is publicly trusted */
  caPem: string | null;
}

/** `tls: null` means none is configured: use ensureBrokerTls to generate one. */
export type ConfiguredTlsResult =
  { ok: true; tls: ConfiguredTls | null } | { ok: false; errors: ConfigError[] };

export interface LoadTlsOptions {
  /** for validity checks; default: the current time */
  now?: Date;
  /** places errors on the config lines (LoadedConfig.locate); without it line/column are 0 */
  locate?: Locate;
  /** relative file paths resolve against this (default: the working directory) */
  baseDir?: string;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export async function loadConfiguredTls(
  config: Pick<Config, 'tls'>,
  options: LoadTlsOptions = {},
): Promise<ConfiguredTlsResult> {
  const section = config.tls;
  if (!section) return { ok: true, tls: null };
  const now = options.now ?? new Date();
  const baseDir = options.baseDir ?? process.cwd();
  const errors: ConfigError[] = [];
  const fail = (key: 'cert_file' | 'key_file' | 'ca_file', message: string): void => {
    const path = `tls.${key}`;
    errors.push({ path, ...(options.locate ? options.locate(path) : { line: 0, column: 0 }), message });
  };
  const read = async (key: 'cert_file' | 'key_file' | 'ca_file', file: string): Promise<string | null> => {
    try {
      return await readFile(resolve(baseDir, file), 'utf8');
    } catch (error) {
      fail(key, `cannot read ${file}: ${fileReason(error)}`);
      return null;
    }
  };

  const [certPem, keyPem, caPem] = await Promise.all([
    read('cert_file', section.cert_file),
    read('key_file', section.key_file),
    section.ca_file === undefined ? Promise.resolve(null) : read('ca_file', section.ca_file),
  ]);

  const chain = certPem === null ? null : parseCertificates(certPem);
  if (certPem !== null && chain === null)
    fail('cert_file', `${section.cert_file} holds no valid PEM certificate`);
  const leaf = chain?.[0];
  if (leaf) {
    if (new Date(leaf.validTo).getTime() <= now.getTime()) {
      fail(
        'cert_file',
        `the certificate in ${section.cert_file} expired on ${new Date(leaf.validTo).toISOString()}`,
      );
    } else if (new Date(leaf.validFrom).getTime() > now.getTime()) {
      fail(
        'cert_file',
        `the certificate in ${section.cert_file} is not valid before ${new Date(leaf.validFrom).toISOString()}`,
      );
    }
  }

  let key: KeyObject | null = null;
  if (keyPem !== null) {
    try {
      key = createPrivateKey(keyPem);
    } catch (error) {
      const encrypted = /ENCRYPTED|passphrase/i.test(`${keyPem.slice(0, 64)} ${(error as Error).message}`);
      fail(
        'key_file',
        encrypted
          ? `${section.key_file} holds an encrypted key; provide it unencrypted (mode 0600)`
          : `${section.key_file} holds no valid PEM private key`,
      );
    }
  }
  if (leaf && key && !leaf.checkPrivateKey(key)) {
    fail('key_file', `${section.key_file} does not match the certificate in ${section.cert_file}`);
  }

  if (caPem !== null && section.ca_file !== undefined) {
    const authorities = parseCertificates(caPem);
    if (authorities === null) fail('ca_file', `${section.ca_file} holds no valid PEM certificate`);
    else if (chain && !issuedBy(chain, authorities)) {
      fail('ca_file', `${section.ca_file} did not issue the certificate in ${section.cert_file}`);
    }
  }

  if (errors.length === 0 && certPem !== null && keyPem !== null) {
    try {
      createSecureContext({ cert: certPem, key: keyPem });
    } catch (error) {
      fail('cert_file', `node refuses the certificate and key: ${(error as Error).message}`);
    }
  }
  if (errors.length > 0 || certPem === null || keyPem === null) return { ok: false, errors };
  return { ok: true, tls: { certPem, keyPem, caPem } };
}

function parseCertificates(pem: string): X509Certificate[] | null {
  const blocks = pem.match(CERT_BLOCK);
  if (!blocks) return null;
  try {
    return blocks.map((block) => new X509Certificate(block));
  } catch {
    return null;
  }
}

/** The chain's last certificate is one of the authorities, or was issued (and signed) by one. */
function issuedBy(chain: readonly X509Certificate[], authorities: readonly X509Certificate[]): boolean {
  const top = chain[chain.length - 1];
  if (!top) return false;
  return authorities.some(
    (authority) =>
      authority.fingerprint256 === top.fingerprint256 ||
      (top.checkIssued(authority) && top.verify(authority.publicKey)),
  );
}
