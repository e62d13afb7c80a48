// Audit export (SIEM): sinks (file with rotation, signed webhook with retries), at least once with the
// position kept in the store (a restart neither loses nor floods), every record carrying the session's
// identity, OCSF mapping, and `hoop-broker audit export` for backfill — against real brokers.
import { createHmac } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ExportRecord, toOcsfRecord } from '../../service/audit/export-format.js';
import { AuditExporter } from '../../service/audit/exporter.js';
import { fileSink, webhookSignature } from '../../service/audit/sinks.js';
import { main, parseSince } from '../../service/cli.js';
import type { Config } from '../../service/config/schema.js';
import { createLogger } from '../../service/log.js';
import { openStore } from '../../service/store/open.js';
import { startBroker, type TestBroker } from '../fixtures/broker.js';
import { type OidcIssuer, startOidcIssuer } from '../fixtures/oidc-issuer.js';
import { makeSession, openedEvent, statementEvent, tokenFor } from '../store/store-suite.js';

const AUD = 'https://hoop.export.test';
const ADMIN = 'export-admin-token-0123456789abcdef';
const SECRET = 'webhook-hmac-secret-0123456789';

interface Receiver {
  url: string;
  /** records accepted, in arrival order */
  records: Record<string, unknown>[];
  batchIds: string[];
  /** answer this status to the next N requests */
  failNext(n: number, status?: number): void;
  badSignatures: number;
  requests: number;
  close(): Promise<void>;
}

/** A SIEM's HTTP collector: checks the signature and the timestamp, keeps what it accepted. */
async function startReceiver(): Promise<Receiver> {
  let fail = 0;
  let failStatus = 503;
  const r: Receiver = {
    url: '',
    records: [],
    batchIds: [],
    badSignatures: 0,
    requests: 0,
    failNext: (n, status = 503) => {
      fail = n;
      failStatus = status;
    },
    close: async () => undefined,
  };
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      r.requests++;
      const body = Buffer.concat(chunks).toString('utf8');
      const ts = Number(req.headers['x-hoop-timestamp']);
      const expected = `v1=${createHmac('sha256', SECRET).update(`${ts}.${body}`).digest('hex')}`;
      if (req.headers['x-hoop-signature'] !== expected || Math.abs(Date.now() / 1000 - ts) > 300) {
        r.badSignatures++;
        res.writeHead(401).end();
        return;
      }
      if (fail > 0) {
        fail--;
        res.writeHead(failStatus).end();
        return;
      }
      r.batchIds.push(String(req.headers['x-hoop-batch-id']));
      for (const line of body.split('\n').filter(Boolean))
        r.records.push(JSON.parse(line) as Record<string, unknown>);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', () => res()));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hoop`;
  r.close = () =>
    new Promise<void>((res) => {
      server.closeAllConnections();
      server.close(() => res());
    });
  return r;
}

async function until<T>(what: string, fn: () => T | Promise<T>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let issuer: OidcIssuer;
let receiver: Receiver;
let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hoop-export-'));
  [issuer, receiver] = await Promise.all([startOidcIssuer({ audience: AUD }), startReceiver()]);
});
afterAll(async () => {
  await Promise.all([issuer?.close(), receiver?.close()]);
  rmSync(dir, { recursive: true, force: true });
});

function brokerConfig(dataDir: string, auditFile: string): Config {
  return {
    listen: { http: { port: 0, host: '127.0.0.1' } },
    data_dir: dataDir,
    issuers: [{ name: 'github', issuer: issuer.issuer, audience: AUD }],
    targets: [
      {
        name: 'db',
        kind: 'postgres',
        host: '127.0.0.1',
        database: 'x',
        user: 'x',
        password: { env: 'EXPORT_DB_PW' },
      },
    ],
    policies: [
      { name: 'prs', when: { event_name: 'pull_request' }, grants: [{ target: 'db', access: 'read' }] },
    ],
    admin: { tokens: [{ name: 'ops', token: { env: 'EXPORT_ADMIN' } }] },
    audit: {
      export_interval: '1s',
      export: [
        { name: 'siem-file', kind: 'file', path: auditFile },
        {
          name: 'siem-hook',
          kind: 'webhook',
          url: receiver.url,
          secret: { env: 'EXPORT_HOOK_SECRET' },
          batch_size: 3,
        },
      ],
    },
  };
}
const ENV = { EXPORT_DB_PW: 'unused', EXPORT_ADMIN: ADMIN, EXPORT_HOOK_SECRET: SECRET };

async function openAndRevoke(b: TestBroker, claims: Record<string, string> = {}): Promise<string> {
  const res = await fetch(`${b.url}/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ oidc_token: await issuer.mint({ event_name: 'pull_request', ...claims }) }),
  });
  expect(res.status).toBe(201);
  const s = (await res.json()) as { id: string; secret: string };
  const del = await fetch(`${b.url}/v1/sessions/${s.id}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${s.secret}` },
  });
  expect(del.status).toBe(200);
  return s.id;
}

const lines = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
const sessionIdsOf = (records: Record<string, unknown>[]) =>
  records.filter((r) => r.type === 'transcript.event').map((r) => (r.session as { id: string }).id);

describe('audit export from a running broker', () => {
  const dataDir = () => join(dir, 'broker-data');
  const auditFile = () => join(dir, 'audit', 'hoop.jsonl');
  let first: string[] = [];

  it('delivers every event to a file and a signed webhook, each with the session identity, retrying a failing receiver', async () => {
    receiver.failNext(2, 503);
    const b = await startBroker({ config: brokerConfig(dataDir(), auditFile()), env: ENV });
    try {
      first = [await openAndRevoke(b, { actor: 'mona', sha: 'abc123' }), await openAndRevoke(b)];
      // a refused request is exported too
      await fetch(`${b.url}/v1/sessions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ oidc_token: await issuer.mint({ event_name: 'push' }) }),
      });
      await until('4 events and a denial in the file', () => {
        try {
          return lines(auditFile()).length >= 5;
        } catch {
          return false;
        }
      });
      await until('the webhook to accept them', () => receiver.records.length >= 5);
    } finally {
      await b.close();
    }
    const file = lines(auditFile());
    expect(file).toHaveLength(5);
    const events = file.filter((r) => r.type === 'transcript.event');
    expect(events.map((r) => (r.event as { kind: string }).kind).sort()).toEqual([
      'session.opened',
      'session.opened',
      'session.revoked',
      'session.revoked',
    ]);
    for (const r of events) {
      expect(r.schema).toBe('hoop.audit.v1');
      expect(r.session).toMatchObject({
        issuer: 'github',
        policy: 'prs',
        repository: expect.any(String),
        workflow: expect.any(String),
        run_id: expect.any(String),
        actor: expect.any(String),
        sha: expect.any(String),
      });
    }
    expect(events.find((r) => (r.session as { actor: string }).actor === 'mona')).toBeDefined();
    const denial = file.find((r) => r.type === 'session.denied')!;
    expect(denial.denial).toMatchObject({ kind: 'policy.no_match' });
    // no secret of the session, the token or the webhook in the export
    const text = readFileSync(auditFile(), 'utf8');
    expect(text).not.toContain(SECRET);
    expect(text).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}\./); // no JWT
    // the webhook: the same records (at least once), signed, after two refused attempts
    expect(receiver.badSignatures).toBe(0);
    expect(receiver.requests).toBeGreaterThanOrEqual(4); // 2 x 503, then batches of at most 3
    expect(new Set(receiver.records.map((r) => JSON.stringify(r)))).toEqual(
      new Set(file.map((r) => JSON.stringify(r))),
    );
  }, 60_000);

  it('after a restart it neither re-sends what was delivered nor loses what was recorded while a receiver was down', async () => {
    const before = receiver.records.length;
    const fileBefore = lines(auditFile()).length;
    receiver.failNext(1_000, 503); // the receiver is down
    let b = await startBroker({ config: brokerConfig(dataDir(), auditFile()), env: ENV });
    let second: string[];
    try {
      second = [await openAndRevoke(b), await openAndRevoke(b)];
      await until('the file to get the new events', () => lines(auditFile()).length >= fileBefore + 4);
    } finally {
      await b.close();
    }
    // the file got exactly the new records: nothing of the first broker's again
    const file = lines(auditFile());
    expect(file).toHaveLength(fileBefore + 4);
    expect(sessionIdsOf(file.slice(fileBefore)).every((id) => second.includes(id))).toBe(true);
    expect(receiver.records.length).toBe(before);
    receiver.failNext(0);
    b = await startBroker({ config: brokerConfig(dataDir(), auditFile()), env: ENV });
    try {
      await until('the webhook to catch up', () => receiver.records.length >= before + 4);
      await new Promise((r) => setTimeout(r, 1500)); // a round more: nothing else arrives
    } finally {
      await b.close();
    }
    const late = receiver.records.slice(before);
    expect(late).toHaveLength(4);
    expect(new Set(sessionIdsOf(late))).toEqual(new Set(second));
    expect(sessionIdsOf(receiver.records).filter((id) => first.includes(id))).toHaveLength(4); // not again
    expect(lines(auditFile())).toHaveLength(fileBefore + 4);
  }, 60_000);

  it('`hoop-broker audit export` backfills jsonl and OCSF, filtered by time', async () => {
    const b = await startBroker({
      config: { ...brokerConfig(dataDir(), auditFile()), audit: undefined },
      env: ENV,
    });
    try {
      const out: string[] = [];
      const err: string[] = [];
      const io = { out: (s: string) => out.push(s), err: (s: string) => err.push(s) };
      process.env.HOOP_ADMIN_TOKEN = ADMIN;
      expect(await main(['audit', 'export', '--url', b.url], io)).toBe(0);
      const all = out.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(all.length).toBe(lines(auditFile()).length);
      expect(err.at(-1)).toBe(`${all.length} record(s)`);
      out.length = 0;
      expect(await main(['audit', 'export', '--url', b.url, '--since', '1m', '--format', 'ocsf'], io)).toBe(
        0,
      );
      const ocsf = out.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(ocsf.length).toBe(all.length); // everything here is from the last minute
      expect(ocsf.every((r) => [3002, 6005].includes(r.class_uid as number))).toBe(true);
      out.length = 0;
      expect(
        await main(
          ['audit', 'export', '--url', b.url, '--since', new Date(Date.now() + 60_000).toISOString()],
          io,
        ),
      ).toBe(0);
      expect(out).toEqual([]);
      // without the admin token: refused
      process.env.HOOP_ADMIN_TOKEN = 'wrong';
      expect(await main(['audit', 'export', '--url', b.url], io)).toBe(1);
    } finally {
      delete process.env.HOOP_ADMIN_TOKEN;
      await b.close();
    }
  }, 60_000);
});

describe('sinks and formats', () => {
  it('the file sink rotates by size, keeps N files, and never splits a line', async () => {
    const path = join(dir, 'rot', 'a.jsonl');
    const sink = fileSink('rot', 'jsonl', { path, maxBytes: 4096, keep: 3 });
    const line = (i: number) => JSON.stringify({ i, pad: 'x'.repeat(200) });
    for (let round = 0; round < 10; round++)
      await sink.deliver(Array.from({ length: 10 }, (_, k) => line(round * 10 + k)));
    await sink.close();
    const files = readdirSync(join(dir, 'rot')).sort();
    expect(files).toEqual(['a.jsonl', 'a.jsonl.1', 'a.jsonl.2', 'a.jsonl.3']);
    let kept: number[] = [];
    for (const f of ['a.jsonl.3', 'a.jsonl.2', 'a.jsonl.1', 'a.jsonl']) {
      const text = readFileSync(join(dir, 'rot', f), 'utf8');
      expect(text.length).toBeLessThanOrEqual(4096);
      expect(text.endsWith('\n')).toBe(true);
      kept = kept.concat(
        text
          .split('\n')
          .filter(Boolean)
          .map((l) => (JSON.parse(l) as { i: number }).i),
      );
    }
    // the newest records, in order, none missing within what is kept
    expect(kept.at(-1)).toBe(99);
    expect(kept).toEqual(Array.from({ length: kept.length }, (_, k) => 100 - kept.length + k));
  });

  it('webhookSignature is HMAC-SHA256 over "timestamp.body"', () => {
    expect(webhookSignature('k', 1700000000, '{"a":1}\n')).toBe(
      `v1=${createHmac('sha256', 'k').update('1700000000.{"a":1}\n').digest('hex')}`,
    );
  });

  it('OCSF: a statement is Datastore Activity Query, a denial a Failure, session events Authentication', () => {
    const session = {
      id: 'ses_1',
      issuer: 'github',
      policy: 'p',
      identity: { actor: 'mona', run_id: '7', repository: 'o/r' },
    };
    const base = {
      seq: 3,
      at: '2026-01-01T00:00:00.000Z',
      session_id: 'ses_1',
      target: 'db',
      reasons: [],
      prev_hash: 'a',
      hash: 'b',
    };
    const stmt = toOcsfRecord({
      type: 'transcript.event',
      session,
      event: {
        ...base,
        kind: 'pg.statement',
        decision: 'allow',
        operation: { statement: 'SELECT 1' },
        rows: 1,
      },
    } as ExportRecord);
    expect(stmt).toMatchObject({
      class_uid: 6005,
      activity_id: 4,
      type_uid: 600504,
      status_id: 1,
      time: Date.parse(base.at),
      query_info: { query_string: 'SELECT 1' },
      actor: { user: { name: 'mona' }, session: { uid: 'ses_1' } },
      metadata: { version: '1.1.0', uid: 'ses_1:3', correlation_uid: '7' },
      unmapped: { session: { repository: 'o/r' }, rows: 1 },
    });
    const denied = toOcsfRecord({
      type: 'transcript.event',
      session,
      event: {
        ...base,
        kind: 'pg.denied',
        decision: 'deny',
        operation: { statement: 'DROP TABLE t' },
        reasons: ['no'],
      },
    } as ExportRecord);
    expect(denied).toMatchObject({ status_id: 2, severity_id: 3, status_detail: 'no' });
    const opened = toOcsfRecord({
      type: 'transcript.event',
      session,
      event: { ...base, kind: 'session.revoked', decision: 'info', operation: {} },
    } as ExportRecord);
    expect(opened).toMatchObject({ class_uid: 3002, activity_id: 2, type_uid: 300202 });
  });

  it('parseSince takes ISO times and ages', () => {
    const now = new Date('2026-06-01T00:00:00Z');
    expect(parseSince('24h', now)?.toISOString()).toBe('2026-05-31T00:00:00.000Z');
    expect(parseSince('7d', now)?.toISOString()).toBe('2026-05-25T00:00:00.000Z');
    expect(parseSince('2026-01-02T03:04:05Z', now)?.toISOString()).toBe('2026-01-02T03:04:05.000Z');
    expect(parseSince('yesterday', now)).toBeNull();
  });

  it('throughput: events exported from the embedded store into a file sink', async () => {
    const store = await openStore({ dataDir: join(dir, 'tp') });
    try {
      const sessions = Array.from({ length: 20 }, () => makeSession());
      for (const s of sessions) await store.openSession(s, openedEvent(s), tokenFor());
      const N = 240;
      for (let round = 0; round < 4; round++)
        await store.appendEventBatches(
          sessions.map((s) => ({
            sessionId: s.id,
            events: Array.from({ length: N / 4 }, (_, i) =>
              statementEvent(`SELECT ${round}, ${i} FROM orders WHERE id = $1`),
            ),
          })),
        );
      const path = join(dir, 'tp.jsonl');
      const sink = fileSink('tp', 'jsonl', { path });
      const exporter = new AuditExporter({
        store,
        sinks: [sink],
        logger: createLogger('silent'),
        readLimit: 200,
      });
      const t0 = performance.now();
      let total = 0;
      for (;;) {
        const r = await exporter.exportOnce(sink);
        total += r.records;
        if (r.drained) break;
      }
      const seconds = (performance.now() - t0) / 1000;
      await exporter.close();
      const expected = sessions.length * (N + 1);
      expect(total).toBe(expected);
      expect(lines(path)).toHaveLength(expected);
      console.log(
        `audit export: ${total} events in ${seconds.toFixed(2)} s = ${Math.round(total / seconds)} events/s (embedded store → file)`,
      );
    } finally {
      await store.close();
    }
  }, 60_000);
});
