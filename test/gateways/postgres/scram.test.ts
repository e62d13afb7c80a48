import { randomBytes, X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { AuthStep } from '../../../service/gateways/postgres/auth/auth-method.js';
import {
  endPointHashAlgorithm,
  tlsServerEndPoint,
} from '../../../service/gateways/postgres/auth/channel-binding.js';
import { CleartextPassword } from '../../../service/gateways/postgres/auth/cleartext.js';
import { mockVerifier, ScramServer } from '../../../service/gateways/postgres/auth/scram-server.js';
import { ScramClient } from '../../../service/gateways/postgres/scram-client.js';
import {
  hashSecret,
  makeScramVerifier,
  newSessionSecret,
  parseScramVerifier,
} from '../../../service/sessions/secret.js';
import { generateCa, issueServerCert } from '../../../service/tls/ca.js';

/** AuthenticationSASL* frame → its data (after the 4-byte code) */
const saslData = (frame: Buffer): string => frame.toString('utf8', 9);

function saslInitial(mechanism: string, data: string): Buffer {
  const m = Buffer.from(`${mechanism}\0`);
  const len = Buffer.alloc(4);
  len.writeInt32BE(Buffer.byteLength(data));
  return Buffer.concat([m, len, Buffer.from(data)]);
}

async function exchange(
  server: ScramServer,
  client: ScramClient,
  tamper: (finalMessage: string) => string = (m) => m,
): Promise<{ final: AuthStep; client: ScramClient }> {
  const offered = server.start();
  expect(offered.readInt32BE(5)).toBe(10);
  const first = client.start();
  const step1 = server.respond(saslInitial(first.mechanism, first.clientFirst));
  if (step1.kind !== 'continue') return { final: step1, client };
  const clientFinal = await client.continue(saslData(step1.message));
  return { final: server.respond(Buffer.from(tamper(clientFinal))), client };
}

describe('SCRAM-SHA-256 server against the session verifier', () => {
  const secret = newSessionSecret();
  const verifier = parseScramVerifier(makeScramVerifier(secret))!;

  it('proves the right secret, and the client verifies the server signature', async () => {
    const server = new ScramServer({ verifier, channelBinding: null });
    const { final, client } = await exchange(server, new ScramClient(secret, ['SCRAM-SHA-256'], null));
    expect(final.kind).toBe('proven');
    if (final.kind !== 'proven') return;
    expect(() => client.verifyFinal(saslData(final.final!))).not.toThrow();
  });

  it('fails a wrong secret at the proof (not earlier: no oracle)', async () => {
    const server = new ScramServer({ verifier, channelBinding: null });
    const { final } = await exchange(server, new ScramClient(newSessionSecret(), ['SCRAM-SHA-256'], null));
    expect(final).toEqual({ kind: 'failed', reason: 'SCRAM proof does not match' });
  });

  it('fails every secret against a mock verifier (unknown session)', async () => {
    const server = new ScramServer({
      verifier: mockVerifier('ses_unknown', randomBytes(32)),
      channelBinding: null,
    });
    const { final } = await exchange(server, new ScramClient(secret, ['SCRAM-SHA-256'], null));
    expect(final.kind).toBe('failed');
  });

  it('gives an unknown user a stable salt, like a real account', () => {
    const key = randomBytes(32);
    expect(mockVerifier('ses_x', key).salt.equals(mockVerifier('ses_x', key).salt)).toBe(true);
    expect(mockVerifier('ses_x', key).salt.equals(mockVerifier('ses_y', key).salt)).toBe(false);
  });

  it('binds the channel with SCRAM-SHA-256-PLUS and refuses other binding data', async () => {
    const cb = randomBytes(32);
    const server = new ScramServer({ verifier, channelBinding: cb });
    expect(saslData(server.start()).split('\0')).toContain('SCRAM-SHA-256-PLUS');
    const ok = await exchange(server, new ScramClient(secret, ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], cb));
    expect(ok.final.kind).toBe('proven');

    const mitm = await exchange(
      new ScramServer({ verifier, channelBinding: cb }),
      new ScramClient(secret, ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], randomBytes(32)),
    );
    expect(mitm.final).toEqual({ kind: 'invalid', message: 'SCRAM channel binding check failed' });
  });

  it("refuses a 'y' flag when PLUS was offered (a stripped mechanism list)", async () => {
    const server = new ScramServer({ verifier, channelBinding: randomBytes(32) });
    server.start();
    const step = server.respond(saslInitial('SCRAM-SHA-256', 'y,,n=*,r=abcdef'));
    expect(step).toEqual({ kind: 'invalid', message: 'SCRAM channel binding negotiation error' });
  });

  it('refuses malformed exchanges and a changed nonce', async () => {
    const server = new ScramServer({ verifier, channelBinding: null });
    server.start();
    expect(server.respond(saslInitial('SCRAM-SHA-256', 'n,a=admin,n=*,r=abc')).kind).toBe('invalid');
    expect(new ScramServer({ verifier, channelBinding: null }).respond(saslInitial('PLAIN', 'x')).kind).toBe(
      'invalid',
    );
    const tampered = await exchange(
      new ScramServer({ verifier, channelBinding: null }),
      new ScramClient(secret, ['SCRAM-SHA-256'], null),
      (m) => m.replace(/,r=([^,]+)/, ',r=$1x'),
    );
    expect(tampered.final).toEqual({ kind: 'invalid', message: 'SCRAM nonce mismatch' });
  });
});

describe('cleartext password', () => {
  it('checks the secret against its hash, and fails unknown sessions', () => {
    const secret = newSessionSecret();
    expect(new CleartextPassword(hashSecret(secret)).respond(Buffer.from(`${secret}\0`)).kind).toBe('proven');
    expect(new CleartextPassword(hashSecret(secret)).respond(Buffer.from('nope\0')).kind).toBe('failed');
    expect(new CleartextPassword(null).respond(Buffer.from(`${secret}\0`)).kind).toBe('failed');
    expect(new CleartextPassword(null).respond(Buffer.from('no terminator')).kind).toBe('invalid');
  });
});

describe('tls-server-end-point', () => {
  it('hashes the broker certificate with its signature hash (ECDSA P-256 / SHA-256)', async () => {
    const now = new Date();
    const ca = await generateCa('t', now);
    const cert = await issueServerCert(ca, ['localhost'], now);
    const der = new X509Certificate(cert.certPem).raw;
    expect(endPointHashAlgorithm(der)).toBe('sha256');
    expect(tlsServerEndPoint(cert.certPem)?.length).toBe(32);
    expect(tlsServerEndPoint('not a certificate')).toBeNull();
  });
});
