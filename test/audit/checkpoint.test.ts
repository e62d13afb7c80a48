// Signed checkpoints: the sequence checks (signature, links, vanished sessions, retention), and, on a real
// broker over a real PostgreSQL store, a session deleted or truncated in the store found by
// `hoop-broker audit verify`.
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkpointKeyFromPem,
  dataDirCheckpointKey,
  keyIdOf,
  makeCheckpoint,
  verifyCheckpointSequence,
} from '../../service/audit/checkpoint.js';
import { main } from '../../service/cli.js';
import type { Config } from '../../service/config/schema.js';
import type { ChainHead } from '../../service/store/store.js';
import { startBroker, type TestBroker } from '../fixtures/broker.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { type PgServer, startPostgres } from '../fixtures/postgres.js';

const key = checkpointKeyFromPem(
  generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
);
const trusted = new Map([[key.keyId, createPublicKey(key.publicKeyPem)]]);
const h = (id: string, seq: number): ChainHead => ({ id, head_seq: seq, head_hash: `${id}-${seq}` });

describe('checkpoint sequence', () => {
  const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
  const pub = (k: typeof key) => new Map([[k.keyId, createPublicKey(k.publicKeyPem)]]);
  function chain() {
    const a = makeCheckpoint(null, [h('s1', 2), h('s2', 1)], [], t(0), key);
    const b = makeCheckpoint(a, [h('s1', 3), h('s2', 1), h('s3', 1)], [], t(1), key);
    const c = makeCheckpoint(b, [h('s2', 4), h('s3', 1)], [h('s1', 3)], t(2), key);
    return [a, b, c];
  }

  it('verifies a good sequence (a session retention pruned is named, not missing)', () => {
    const r = verifyCheckpointSequence(chain(), pub(key));
    expect(r.problems).toEqual([]);
    expect(r.latest?.sessions.map(([id]) => id)).toEqual(['s2', 's3']);
    // the verifier needs only the public key
    expect(keyIdOf(createPublicKey(key.publicKeyPem))).toBe(key.keyId);
  });

  it('finds an altered body, a missing checkpoint, a vanished session, a head moved back, an untrusted key', () => {
    const [a, b, c] = chain();
    const altered = { ...b!, body: b!.body.replace('"s3",1', '"s3",9') };
    expect(verifyCheckpointSequence([a!, altered, c!], trusted).problems).toContainEqual({
      checkpoint: 2,
      problem: 'the signature does not verify: the checkpoint was altered',
    });
    expect(verifyCheckpointSequence([a!, c!], trusted).problems).toContainEqual({
      checkpoint: 3,
      problem: 'checkpoint 2 is missing',
    });
    const vanished = makeCheckpoint(b!, [h('s1', 3), h('s3', 1)], [], t(3), key);
    expect(verifyCheckpointSequence([a!, b!, vanished], trusted).problems).toEqual([
      { checkpoint: 3, session: 's2', problem: 'the session vanished without being pruned' },
    ]);
    const back = makeCheckpoint(b!, [h('s1', 1), h('s2', 1), h('s3', 1)], [], t(3), key);
    expect(verifyCheckpointSequence([a!, b!, back], trusted).problems).toEqual([
      { checkpoint: 3, session: 's1', problem: 'its head moved back from seq 3 to 1' },
    ]);
    const other = checkpointKeyFromPem(
      generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    );
    const forged = makeCheckpoint(b!, [h('s1', 3), h('s2', 1), h('s3', 1)], [], t(3), other);
    expect(verifyCheckpointSequence([a!, b!, forged], trusted).problems[0]?.problem).toMatch(/not trusted/);
  });

  it('a key in data_dir is created once (0600) and reused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hoop-ckey-'));
    try {
      const k1 = await dataDirCheckpointKey(dir);
      const k2 = await dataDirCheckpointKey(dir);
      expect(k2.keyId).toBe(k1.keyId);
      const { statSync } = await import('node:fs');
      expect(statSync(join(dir, 'checkpoint', 'signing-key.pem')).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('audit verify against a broker on a PostgreSQL store', () => {
  const AUD = 'https://hoop.checkpoint.test';
  const ADMIN = 'checkpoint-admin-token-0123456789ab';
  let issuer: OidcIssuer;
  let db: PgServer;
  let broker: TestBroker;
  let raw: pg.Client;
  let dir: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hoop-ckpt-'));
    [issuer, db] = await Promise.all([startOidcIssuer({ audience: AUD }), startPostgres()]);
    await db.psql('CREATE DATABASE hoop_store');
    const keyFile = join(dir, 'checkpoint.pem');
    writeFileSync(keyFile, key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), {
      mode: 0o600,
    });
    const config: Config = {
      listen: { http: { port: 0, host: '127.0.0.1' } },
      store: { url: { env: 'CKPT_STORE_URL' } },
      issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUD }],
      targets: [
        {
          name: 'db',
          kind: 'postgres',
          host: '127.0.0.1',
          database: 'x',
          user: 'x',
          password: { env: 'CKPT_DB_PW' },
        },
      ],
      policies: [
        { name: 'all', when: { event_name: 'pull_request' }, grants: [{ target: 'db', access: 'read' }] },
      ],
      admin: { tokens: [{ name: 'ops', token: { env: 'CKPT_ADMIN' } }] },
      audit: { checkpoint: { interval: '1h', key: { file: keyFile } } },
    };
    broker = await startBroker({
      config,
      env: { CKPT_STORE_URL: db.url('hoop_store'), CKPT_DB_PW: 'unused', CKPT_ADMIN: ADMIN },
    });
    raw = new pg.Client({ connectionString: db.url('hoop_store') });
    await raw.connect();
    process.env.HOOP_ADMIN_TOKEN = ADMIN;
  });
  afterAll(async () => {
    delete process.env.HOOP_ADMIN_TOKEN;
    await raw?.end();
    await broker?.close();
    await Promise.all([issuer?.close(), db?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  const verifyCli = async (...extra: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(['audit', 'verify', '--url', broker.url, ...extra], {
      out: (s) => out.push(s),
      err: (s) => err.push(s),
    });
    return { code, out: out.join('\n'), err: err.join('\n') };
  };

  async function openRevoke(): Promise<string> {
    const res = await fetch(`${broker.url}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ oidc_token: await issuer.mint({ event_name: 'pull_request' }) }),
    });
    const s = (await res.json()) as { id: string; secret: string };
    await fetch(`${broker.url}/v1/sessions/${s.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${s.secret}` },
    });
    return s.id;
  }

  it('serves the public key, signs the heads, and verifies; then finds a deleted and a truncated session', async () => {
    const keyRes = await fetch(`${broker.url}/v1/audit/checkpoint-key`);
    expect(await keyRes.json()).toEqual({
      alg: 'Ed25519',
      key_id: key.keyId,
      public_key_pem: key.publicKeyPem,
    });
    const ids = [await openRevoke(), await openRevoke(), await openRevoke()];
    const cp = await broker.broker.checkpointer.checkpoint();
    expect(cp?.seq).toBe(1);
    expect(await broker.broker.checkpointer.checkpoint()).toBeNull(); // nothing changed: no new checkpoint
    const ok = await verifyCli();
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toContain('1 checkpoint(s) verified (1..1); the latest signs 3 session head(s)');
    // verifying with the key kept elsewhere
    const pubFile = join(dir, 'pub.pem');
    writeFileSync(pubFile, key.publicKeyPem);
    expect((await verifyCli('--public-key', pubFile)).code).toBe(0);

    // someone with write access to the store deletes one session and cuts another back to its first event
    await raw.query('DELETE FROM sessions WHERE id = $1', [ids[0]]);
    const first = await raw.query<{ events: string }>(
      'SELECT events FROM event_chunks WHERE session_id = $1 AND first_seq = 1',
      [ids[1]],
    );
    const firstHash = (JSON.parse(first.rows[0]!.events) as { hash: string }[])[0]!.hash;
    await raw.query('DELETE FROM event_chunks WHERE session_id = $1 AND first_seq > 1', [ids[1]]);
    await raw.query('UPDATE sessions SET head_seq = 1, head_hash = $2 WHERE id = $1', [ids[1], firstHash]);
    // each remaining transcript's own chain still verifies: only the checkpoint shows what happened
    const t = await fetch(`${broker.url}/v1/sessions/${ids[1]}/transcript`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(((await t.json()) as { chain_verified: boolean }).chain_verified).toBe(true);

    const bad = await verifyCli();
    expect(bad.code).toBe(1);
    expect(bad.err).toContain(`session ${ids[0]}: deleted: the checkpoint signed its head at seq 2`);
    expect(bad.err).toContain(`session ${ids[1]}: truncated: 1 events, the checkpoint signed seq 2`);
    expect(bad.err).not.toContain(ids[2]);

    // a checkpoint written after the tampering does not hide it: the sessions vanished or moved back
    expect((await broker.broker.checkpointer.checkpoint())?.seq).toBe(2);
    const later = await verifyCli();
    expect(later.code).toBe(1);
    expect(later.err).toContain(`checkpoint 2 session ${ids[0]}: the session vanished without being pruned`);
    expect(later.err).toContain(`checkpoint 2 session ${ids[1]}: its head moved back from seq 2 to 1`);
  }, 60_000);
});
