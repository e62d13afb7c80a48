// The broker's own certificate authority, used when no certificate is configured: a CA and a server
// certificate generated into data_dir/tls and kept across restarts, so clients that received the
// CA in an earlier session keep verifying the broker. ECDSA P-256 throughout.
import { createPrivateKey, X509Certificate as NodeCertificate, randomBytes, webcrypto } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { x509 } from './x509.js';

const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
const CA_LIFETIME_MS = 3650 * DAY_MS;
const SERVER_LIFETIME_MS = 365 * DAY_MS;
/** Re-issue (or, for the CA, regenerate) when this close to expiry. */
export const RENEW_BEFORE_MS = 30 * DAY_MS;
/** Certificates start a little in the past so a client with a slow clock accepts them. */
const BACKDATE_MS = 5 * 60_000;
/** Names every generated server certificate carries, so local clients can always verify it. */
export const DEFAULT_HOSTNAMES = ['localhost', '127.0.0.1', '::1'] as const;

export interface PemKeyPair {
  certPem: string;
  keyPem: string;
}

export interface BrokerTls {
  caPem: string;
  certPem: string;
  keyPem: string;
  /** true when the CA was created by this call (first start, or the old CA was about to expire) */
  generated: boolean;
  /** true when the server certificate was (re-)issued by this call */
  serverCertIssued: boolean;
}

/** A problem with existing TLS files that a person must look at (never silently replaced). */
export class TlsMaterialError extends Error {
  override name = 'TlsMaterialError';
}

/** A new self-signed CA: ECDSA P-256, 10 years, CA:true (path length 0), keyCertSign + cRLSign. */
export async function generateCa(commonName: string, now: Date): Promise<PemKeyPair> {
  const keys = await webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [commonName] }],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + CA_LIFETIME_MS),
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: pemText(cert.toString('pem')), keyPem: await exportKeyPem(keys.privateKey) };
}

/**
 * A server certificate signed by `ca`: ECDSA P-256, one year (never past the CA), serverAuth, with a
 * SAN entry per hostname (DNS names and IP addresses). Hostnames are used as given; add
 * DEFAULT_HOSTNAMES yourself if you want them (ensureBrokerTls does).
 */
export async function issueServerCert(
  ca: PemKeyPair,
  hostnames: readonly string[],
  now: Date,
): Promise<PemKeyPair> {
  const names = normalizeHostnames(hostnames);
  if (names.length === 0) throw new Error('issueServerCert: at least one hostname is required');
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importSigningKey(ca.keyPem);
  const keys = await webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
  const notAfter = Math.min(now.getTime() + SERVER_LIFETIME_MS, caCert.notAfter.getTime());
  const commonName = names.find((name) => isIP(name) === 0) ?? names[0] ?? 'localhost';
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: [{ CN: [commonName] }],
    issuer: caCert.subjectName,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(notAfter),
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((name) => ({ type: isIP(name) === 0 ? ('dns' as const) : ('ip' as const), value: name })),
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  return { certPem: pemText(cert.toString('pem')), keyPem: await exportKeyPem(keys.privateKey) };
}

/**
 * The broker's TLS material in `dataDir/tls` (ca.pem, ca.key, server.pem, server.key; keys mode
 * 0600): created on first start, reused after. The server certificate is re-issued by the same CA
 * when it expires within 30 days, lacks a requested hostname, or no longer matches its key or CA.
 * Throws TlsMaterialError when the CA files are damaged or only half present.
 */
export async function ensureBrokerTls(
  dataDir: string,
  hostnames: readonly string[],
  now: Date,
): Promise<BrokerTls> {
  const dir = join(dataDir, 'tls');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = {
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
  };
  const wanted = normalizeHostnames([...DEFAULT_HOSTNAMES, ...hostnames]);

  let ca = await readPair(files.caCert, files.caKey, 'the broker CA');
  let generated = false;
  if (ca) {
    checkCa(ca, files.caCert);
    if (expiresWithin(ca.certPem, now)) ca = null;
    else await chmod(files.caKey, 0o600);
  }
  if (!ca) {
    ca = await generateCa(`hoop broker CA ${randomBytes(4).toString('hex')}`, now);
    await writeAtomically(files.caKey, ca.keyPem, 0o600);
    await writeAtomically(files.caCert, ca.certPem, 0o644);
    generated = true;
  }

  let server = generated
    ? null
    : await readPair(files.serverCert, files.serverKey, 'the server certificate', true);
  if (server && !serverCertUsable(server, ca, wanted, now)) server = null;
  let serverCertIssued = false;
  if (!server) {
    server = await issueServerCert(ca, wanted, now);
    await writeAtomically(files.serverKey, server.keyPem, 0o600);
    await writeAtomically(files.serverCert, server.certPem, 0o644);
    serverCertIssued = true;
  } else {
    await chmod(files.serverKey, 0o600);
  }
  return { caPem: ca.certPem, certPem: server.certPem, keyPem: server.keyPem, generated, serverCertIssued };
}

/** Lower-cased, brackets stripped from IPv6, wildcard bind addresses dropped, duplicates removed. */
export function normalizeHostnames(hostnames: readonly string[]): string[] {
  const names: string[] = [];
  for (const raw of hostnames) {
    let name = raw.trim().toLowerCase();
    if (name.startsWith('[') && name.endsWith(']')) name = name.slice(1, -1);
    if (name === '' || name === '0.0.0.0' || name === '::') continue;
    if (isIP(name) === 6) name = canonicalIpv6(name);
    if (!names.includes(name)) names.push(name);
  }
  return names;
}

function canonicalIpv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

async function readPair(
  certPath: string,
  keyPath: string,
  what: string,
  tolerateDamage = false,
): Promise<PemKeyPair | null> {
  const [certPem, keyPem] = await Promise.all([readOptional(certPath), readOptional(keyPath)]);
  if (certPem === null && keyPem === null) return null;
  if (certPem === null || keyPem === null) {
    if (tolerateDamage) return null;
    throw new TlsMaterialError(
      `${what} is incomplete: ${certPem === null ? certPath : keyPath} is missing; restore it, or remove ${certPem === null ? keyPath : certPath} to generate a new one`,
    );
  }
  return { certPem, keyPem };
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

function checkCa(ca: PemKeyPair, certPath: string): void {
  try {
    const cert = new NodeCertificate(ca.certPem);
    if (!cert.ca) throw new Error('not a CA certificate');
    if (!cert.checkPrivateKey(createPrivateKey(ca.keyPem)))
      throw new Error('the key does not match the certificate');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new TlsMaterialError(
      `the broker CA in ${certPath} is unusable (${reason}); restore it, or remove ca.pem and ca.key to generate a new CA (clients must then trust the new one)`,
    );
  }
}

function expiresWithin(certPem: string, now: Date): boolean {
  return new Date(new NodeCertificate(certPem).validTo).getTime() - now.getTime() < RENEW_BEFORE_MS;
}

function serverCertUsable(server: PemKeyPair, ca: PemKeyPair, wanted: readonly string[], now: Date): boolean {
  try {
    const cert = new NodeCertificate(server.certPem);
    const caCert = new NodeCertificate(ca.certPem);
    if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) return false;
    if (!cert.checkPrivateKey(createPrivateKey(server.keyPem))) return false;
    if (new Date(cert.validFrom).getTime() > now.getTime() || expiresWithin(server.certPem, now))
      return false;
    const present = new Set(sanNames(server.certPem));
    return wanted.every((name) => present.has(name));
  } catch {
    return false; // damaged server files are replaced: the CA, not this cert, is what clients trust
  }
}

function sanNames(certPem: string): string[] {
  const san = new x509.X509Certificate(certPem).getExtension(x509.SubjectAlternativeNameExtension);
  if (!san) return [];
  return normalizeHostnames(
    san.names.items.filter((item) => item.type === 'dns' || item.type === 'ip').map((item) => item.value),
  );
}

async function importSigningKey(keyPem: string): Promise<webcrypto.CryptoKey> {
  const der = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  return await webcrypto.subtle.importKey('pkcs8', der, EC_KEY, false, ['sign']);
}

async function exportKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return pemText(x509.PemConverter.encode(der, 'PRIVATE KEY'));
}

/** PEM files end with a newline, so they can be concatenated into bundles and chains. */
function pemText(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

/** A positive 128-bit serial (top bit clear so DER needs no sign byte). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

/** Write then rename, so a crash never leaves a half-written key or certificate behind. */
async function writeAtomically(path: string, content: string, mode: number): Promise<void> {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(temporary, content, { mode, flag: 'wx' });
  await rename(temporary, path);
}
