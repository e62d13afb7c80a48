import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrokerTls,
  ensureBrokerTls,
  generateCa,
  issueServerCert,
  TlsMaterialError,
} from '../../service/tls/ca.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const DAY = 86_400_000;
const root = mkdtempSync(join(tmpdir(), 'hoop-tls-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function sans(certPem: string): string[] {
  return (new X509Certificate(certPem).subjectAltName ?? '').split(', ').sort();
}

describe('ensureBrokerTls', () => {
  const dataDir = join(root, 'data');
  let first: BrokerTls;

  beforeAll(async () => {
    first = await ensureBrokerTls(dataDir, ['broker.internal', '10.1.2.3', '0.0.0.0'], NOW);
  });

  it('generates a CA and a server certificate with the expected properties', () => {
    expect(first.generated).toBe(true);
    expect(first.serverCertIssued).toBe(true);
    const ca = new X509Certificate(first.caPem);
    expect(ca.ca).toBe(true);
    expect(ca.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(new Date(ca.validTo).getTime() - NOW.getTime()).toBeGreaterThan(3649 * DAY);
    expect(ca.toLegacyObject().ext_key_usage).toBeUndefined();

    const server = new X509Certificate(first.certPem);
    expect(server.ca).toBe(false);
    expect(server.checkIssued(ca) && server.verify(ca.publicKey)).toBe(true);
    expect(server.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // serverAuth
    expect(sans(first.certPem)).toEqual(
      [
        'DNS:localhost',
        'DNS:broker.internal',
        'IP Address:127.0.0.1',
        'IP Address:0:0:0:0:0:0:0:1',
        'IP Address:10.1.2.3',
      ].sort(),
    );
    const lifetime = new Date(server.validTo).getTime() - NOW.getTime();
    expect(lifetime).toBeGreaterThan(364 * DAY);
    expect(lifetime).toBeLessThanOrEqual(365 * DAY);
    expect(new Date(server.validFrom).getTime()).toBeLessThanOrEqual(NOW.getTime());
  });

  it('stores the files with private keys readable by the owner only', () => {
    const dir = join(dataDir, 'tls');
    expect(readFileSync(join(dir, 'ca.pem'), 'utf8')).toBe(first.caPem);
    expect(readFileSync(join(dir, 'server.pem'), 'utf8')).toBe(first.certPem);
    expect(readFileSync(join(dir, 'server.key'), 'utf8')).toBe(first.keyPem);
    expect(statSync(join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'server.key')).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });

  it('reuses everything on restart', async () => {
    const again = await ensureBrokerTls(
      dataDir,
      ['broker.internal', '10.1.2.3'],
      new Date(NOW.getTime() + DAY),
    );
    expect(again).toEqual({ ...first, generated: false, serverCertIssued: false });
  });

  it('re-issues the server certificate (same CA) for a new hostname', async () => {
    const more = await ensureBrokerTls(dataDir, ['broker.internal', '10.1.2.3', 'hoop.example.com'], NOW);
    expect(more.generated).toBe(false);
    expect(more.serverCertIssued).toBe(true);
    expect(more.caPem).toBe(first.caPem);
    expect(more.certPem).not.toBe(first.certPem);
    expect(sans(more.certPem)).toContain('DNS:hoop.example.com');
    expect(readFileSync(join(dataDir, 'tls', 'server.pem'), 'utf8')).toBe(more.certPem);
  });

  it('re-issues the server certificate when it expires within 30 days', async () => {
    const before = readFileSync(join(dataDir, 'tls', 'server.pem'), 'utf8');
    const later = new Date(NOW.getTime() + 340 * DAY);
    const renewed = await ensureBrokerTls(dataDir, ['hoop.example.com'], later);
    expect(renewed).toMatchObject({ caPem: first.caPem, generated: false, serverCertIssued: true });
    expect(renewed.certPem).not.toBe(before);
    expect(
      new Date(new X509Certificate(renewed.certPem).validTo).getTime() - later.getTime(),
    ).toBeGreaterThan(364 * DAY);
  });

  it('replaces a damaged server certificate but refuses a damaged CA', async () => {
    const dir = join(root, 'damaged');
    const made = await ensureBrokerTls(dir, [], NOW);
    writeFileSync(join(dir, 'tls', 'server.pem'), 'garbage');
    const repaired = await ensureBrokerTls(dir, [], NOW);
    expect(repaired).toMatchObject({ caPem: made.caPem, generated: false, serverCertIssued: true });

    const other = await generateCa('someone else', NOW);
    writeFileSync(join(dir, 'tls', 'ca.key'), other.keyPem);
    await expect(ensureBrokerTls(dir, [], NOW)).rejects.toThrow(TlsMaterialError);
    await expect(ensureBrokerTls(dir, [], NOW)).rejects.toThrow(/the key does not match the certificate/);

    rmSync(join(dir, 'tls', 'ca.key'));
    await expect(ensureBrokerTls(dir, [], NOW)).rejects.toThrow(
      /the broker CA is incomplete: .*ca\.key is missing/,
    );
  });
});

describe('generated certificates work with real TLS clients', () => {
  let material: BrokerTls;
  let server: tls.Server;
  let port: number;
  const caFile = join(root, 'client-ca.pem');

  beforeAll(async () => {
    material = await ensureBrokerTls(join(root, 'handshake'), [], new Date());
    writeFileSync(caFile, material.caPem);
    // The server greets and lets the client close first: a server that closes first races the client's
    // own close_notify, and openssl s_client then exits 1 on the reset (after a successful verify).
    server = tls.createServer({ cert: material.certPem, key: material.keyPem }, (socket) => {
      socket.on('error', () => {});
      socket.on('end', () => socket.end());
      socket.write('hello\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function connect(options: tls.ConnectionOptions): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: material.caPem, ...options }, () => {
        let data = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => {
          data += chunk;
          if (data.endsWith('\n')) socket.end();
        });
        socket.on('end', () => resolve(data));
      });
      socket.on('error', reject);
    });
  }

  it('node tls verifies the server by DNS name and by IP address', async () => {
    expect(await connect({ servername: 'localhost' })).toBe('hello\n');
    expect(await connect({})).toBe('hello\n'); // checks the 127.0.0.1 IP SAN
  });

  it('node tls refuses a wrong name and an unknown CA', async () => {
    await expect(connect({ servername: 'evil.example' })).rejects.toMatchObject({
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
    const other = await generateCa('other CA', new Date());
    await expect(connect({ servername: 'localhost', ca: other.certPem })).rejects.toMatchObject({
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
  });

  function openssl(args: string[]): Promise<{ code: number | null; output: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, output }));
      child.stdin.end();
    });
  }

  it('openssl s_client verifies the chain, the host name and the IP address', async () => {
    const base = ['s_client', '-connect', `127.0.0.1:${port}`, '-verify_return_error', '-CAfile', caFile];
    const byName = await openssl([...base, '-servername', 'localhost', '-verify_hostname', 'localhost']);
    expect(byName.output).toContain('Verify return code: 0 (ok)');
    expect(byName.code).toBe(0);
    const byIp = await openssl([...base, '-verify_ip', '127.0.0.1']);
    expect(byIp.output).toContain('Verify return code: 0 (ok)');
    expect(byIp.code).toBe(0);
    const wrongName = await openssl([...base, '-verify_hostname', 'evil.example']);
    expect(wrongName.code).not.toBe(0);
    expect(wrongName.output).toMatch(/hostname mismatch/);
  });

  it('issueServerCert serves other tests a certificate for any name', async () => {
    const ca = await generateCa('test CA', new Date());
    const leaf = await issueServerCert(ca, ['db.test', '127.0.0.1'], new Date());
    expect(sans(leaf.certPem)).toEqual(['DNS:db.test', 'IP Address:127.0.0.1']);
    expect(new X509Certificate(leaf.certPem).checkIssued(new X509Certificate(ca.certPem))).toBe(true);
  });
});
