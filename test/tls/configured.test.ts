import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../service/config/load.js';
import { generateCa, issueServerCert, type PemKeyPair } from '../../service/tls/ca.js';
import { loadConfiguredTls } from '../../service/tls/configured.js';

const dir = mkdtempSync(join(tmpdir(), 'hoop-configured-tls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const NOW = new Date('2026-03-01T12:00:00Z');
const file = (name: string): string => join(dir, name);

let ca: PemKeyPair;
let leaf: PemKeyPair;

beforeAll(async () => {
  ca = await generateCa('configured CA', NOW);
  leaf = await issueServerCert(ca, ['broker.example.com'], NOW);
  const otherCa = await generateCa('other CA', NOW);
  const expired = await issueServerCert(ca, ['broker.example.com'], new Date('2020-01-01T00:00:00Z'));
  writeFileSync(file('ca.pem'), ca.certPem);
  writeFileSync(file('server.pem'), leaf.certPem);
  writeFileSync(file('server.key'), leaf.keyPem, { mode: 0o600 });
  writeFileSync(file('chain.pem'), leaf.certPem + ca.certPem);
  writeFileSync(file('other-ca.pem'), otherCa.certPem);
  writeFileSync(file('other.key'), otherCa.keyPem);
  writeFileSync(file('expired.pem'), expired.certPem);
  writeFileSync(file('expired.key'), expired.keyPem);
  writeFileSync(file('garbage.pem'), 'not a certificate\n');
});

describe('loadConfiguredTls', () => {
  it('returns null when no certificate is configured', async () => {
    expect(await loadConfiguredTls({})).toEqual({ ok: true, tls: null });
  });

  it('loads a matching certificate, key and CA (also with the chain in cert_file)', async () => {
    const result = await loadConfiguredTls(
      { tls: { cert_file: file('server.pem'), key_file: file('server.key'), ca_file: file('ca.pem') } },
      { now: NOW },
    );
    expect(result).toEqual({
      ok: true,
      tls: { certPem: leaf.certPem, keyPem: leaf.keyPem, caPem: ca.certPem },
    });
    const chained = await loadConfiguredTls(
      { tls: { cert_file: file('chain.pem'), key_file: 'server.key', ca_file: 'ca.pem' } },
      { now: NOW, baseDir: dir },
    );
    expect(chained).toEqual({
      ok: true,
      tls: { certPem: leaf.certPem + ca.certPem, keyPem: leaf.keyPem, caPem: ca.certPem },
    });
    const noCa = await loadConfiguredTls(
      { tls: { cert_file: file('server.pem'), key_file: file('server.key') } },
      { now: NOW },
    );
    expect(noCa.ok && noCa.tls?.caPem).toBeNull();
  });

  it('reports each problem at its config line', async () => {
    const yaml = [
      'listen: { http: { port: 8080 } }',
      'tls:',
      `  cert_file: ${file('server.pem')}`,
      `  key_file: ${file('other.key')}`,
      `  ca_file: ${file('other-ca.pem')}`,
      'issuers: [{ name: github, issuer: https://token.actions.githubusercontent.com, audience: hoop }]',
      'targets: []',
      'policies: []',
    ].join('\n');
    const loaded = loadConfigText(yaml, 'hoop.yaml');
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    const result = await loadConfiguredTls(loaded.config, { now: NOW, locate: loaded.locate });
    expect(result).toEqual({
      ok: false,
      errors: [
        {
          path: 'tls.key_file',
          line: 4,
          column: 13,
          message: `${file('other.key')} does not match the certificate in ${file('server.pem')}`,
        },
        {
          path: 'tls.ca_file',
          line: 5,
          column: 12,
          message: `${file('other-ca.pem')} did not issue the certificate in ${file('server.pem')}`,
        },
      ],
    });
  });

  it('refuses missing files, garbage and expired certificates', async () => {
    const missing = await loadConfiguredTls({
      tls: { cert_file: file('nope.pem'), key_file: file('garbage.pem') },
    });
    expect(missing).toEqual({
      ok: false,
      errors: [
        {
          path: 'tls.cert_file',
          line: 0,
          column: 0,
          message: `cannot read ${file('nope.pem')}: no such file`,
        },
        {
          path: 'tls.key_file',
          line: 0,
          column: 0,
          message: `${file('garbage.pem')} holds no valid PEM private key`,
        },
      ],
    });
    const garbage = await loadConfiguredTls({
      tls: { cert_file: file('garbage.pem'), key_file: file('server.key') },
    });
    expect(garbage.ok === false && garbage.errors.map((error) => error.message)).toEqual([
      `${file('garbage.pem')} holds no valid PEM certificate`,
    ]);
    const expired = await loadConfiguredTls(
      { tls: { cert_file: file('expired.pem'), key_file: file('expired.key') } },
      { now: NOW },
    );
    expect(expired.ok === false && expired.errors.map((error) => error.message)).toEqual([
      `the certificate in ${file('expired.pem')} expired on 2020-12-31T00:00:00.000Z`,
    ]);
  });
});
