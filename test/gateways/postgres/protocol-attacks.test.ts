// Protocol-level attacks found by an independent pass (issue 12), each through the real broker with a
// raw wire client, checked on the upstream database: client-encoding smuggling (startup keys in any
// letter case, role defaults, LATIN1), and an expected-reply queue that fell behind the server (an
// error before a denied message in one batch; a Sync sent during COPY FROM STDIN), after which a stale
// mask plan let a masked column out raw.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayHarness,
  SEED_SQL,
  startGatewayHarness,
  TARGET,
  TARGET_DATABASE,
  TARGET_USER,
  type TestSession,
} from '../../fixtures/pg-gateway-harness.js';
import { cells, fields, type Frame, msg, openWire, type Wire, WireRefused } from '../../fixtures/pg-wire.js';
import { psql } from './helpers.js';

let h: GatewayHarness;

const EMAILS = ['alice@example.com', 'bob@example.org'];

beforeAll(async () => {
  h = await startGatewayHarness({
    seedSql: `${SEED_SQL}
      CREATE TABLE "bücher" (id int, title text);
      INSERT INTO "bücher" VALUES (1, 'geheim');
      CREATE TABLE "People" (id int, "Email" text, "näme" text);
      INSERT INTO "People" VALUES (1, 'p1@example.com', 'Zoë'), (2, 'p2@example.com', 'Åsa');`,
  });
});
afterAll(async () => {
  await h?.close();
});

function viaBroker(s: TestSession, parameters: Record<string, string> = {}): Promise<Wire> {
  return openWire({
    port: h.port,
    user: s.id,
    password: s.secret,
    database: TARGET,
    tls: true,
    parameters,
  });
}

async function ordersCount(): Promise<number> {
  return Number((await h.adminSql('SELECT count(*) FROM orders')).trim());
}

/** What a connection attempt gives: the refusal, or (on a broker that lets it in) the wire. */
async function attempt(
  s: TestSession,
  parameters: Record<string, string>,
): Promise<{ refused: WireRefused } | { wire: Wire }> {
  try {
    return { wire: await viaBroker(s, parameters) };
  } catch (err) {
    if (err instanceof WireRefused) return { refused: err };
    throw err;
  }
}

/** SELECT E'<0x95>\'; <smuggled>; --' : one string literal as UTF-8, a statement break in SJIS. */
function sjisSmuggle(smuggled: string): Buffer {
  return Buffer.concat([Buffer.from("SELECT E'"), Buffer.from([0x95]), Buffer.from(`\\'; ${smuggled}; --'`)]);
}

function rawEmails(frames: Frame[]): string[] {
  return frames
    .filter((f) => f.type === 'D')
    .flatMap((f) => cells(f))
    .filter((c): c is string => c !== null && EMAILS.includes(c));
}

describe('client encoding smuggling', () => {
  it('refuses Client_Encoding=SJIS at startup in any letter case; the smuggled DELETE never runs', async () => {
    const s = h.createSession({ access: 'write', deny: [{ table: ['orders'] }] });
    for (const key of ['Client_Encoding', 'CLIENT_ENCODING', 'client_encoding']) {
      const before = await ordersCount();
      const r = await attempt(s, { [key]: 'SJIS' });
      if ('wire' in r) {
        r.wire.send(msg.query(sjisSmuggle('DELETE FROM orders')));
        await r.wire.readyAfter(1);
        r.wire.close();
      }
      expect(await ordersCount()).toBe(before);
      expect('refused' in r, `${key}=SJIS was let in`).toBe(true);
      if ('refused' in r) expect(r.refused.message).toMatch(/client_encoding.*SJIS.*UTF8/i);
    }
  });

  it('refuses a startup setting given twice in different letter cases', async () => {
    const s = h.createSession({ access: 'read' });
    const r = await attempt(s, { client_encoding: 'UTF8', Client_Encoding: 'SJIS' });
    if ('wire' in r) r.wire.close();
    expect('refused' in r).toBe(true);
    if ('refused' in r) expect(r.refused.message).toMatch(/client_encoding.*more than once/i);
  });

  it('pins the upstream to UTF8 when a role default sets SJIS: the client sees UTF8 and nothing is smuggled', async () => {
    await h.adminSql(`ALTER ROLE ${TARGET_USER} IN DATABASE ${TARGET_DATABASE} SET client_encoding = 'SJIS'`);
    try {
      const s = h.createSession({ access: 'write', deny: [{ table: ['orders'] }] });
      const before = await ordersCount();
      const w = await viaBroker(s);
      expect(w.startupParameters.get('client_encoding')).toBe('UTF8');
      w.send(msg.query(sjisSmuggle('DELETE FROM orders')));
      const r = await w.readyAfter(1);
      w.close();
      // as UTF-8 the byte 0x95 is invalid: the server refuses the text, it does not split it
      expect(r.frames.some((f) => f.type === 'E')).toBe(true);
      expect(await ordersCount()).toBe(before);
      // RESET and DISCARD ALL go back to the pinned UTF8, not to the role default
      const w2 = await viaBroker(s);
      w2.send(
        msg.query('RESET client_encoding'),
        msg.query('DISCARD ALL'),
        msg.query('SHOW client_encoding'),
      );
      const r2 = await w2.readyAfter(3);
      w2.close();
      const shown = r2.frames.filter((f) => f.type === 'D').map((f) => cells(f)[0]);
      expect(shown).toEqual(['UTF8']);
      const statuses = r2.frames.filter((f) => f.type === 'S').map((f) => f.body.toString('latin1'));
      expect(statuses.every((st) => !st.includes('SJIS'))).toBe(true);
    } finally {
      await h.adminSql(`ALTER ROLE ${TARGET_USER} IN DATABASE ${TARGET_DATABASE} RESET client_encoding`);
    }
  });

  it('refuses client_encoding LATIN1 at startup (a deny rule on bücher was read past as UTF-8)', async () => {
    const s = h.createSession({ access: 'read', deny: [{ table: ['bücher'] }] });
    const r = await attempt(s, { client_encoding: 'LATIN1' });
    let leaked = false;
    if ('wire' in r) {
      r.wire.send(msg.query(Buffer.from('SELECT title FROM "b\xfccher"', 'latin1')));
      const out = await r.wire.readyAfter(1);
      leaked = out.frames.some((f) => f.type === 'D');
      r.wire.close();
    }
    expect(leaked).toBe(false);
    expect('refused' in r).toBe(true);
    if ('refused' in r) expect(r.refused.message).toMatch(/client_encoding.*LATIN1/i);
    // psql with that encoding gets the same clear refusal; with UTF8 the deny rule holds
    const latin = await psql(h, s, ['-c', 'SELECT 1'], { PGCLIENTENCODING: 'LATIN1' });
    expect(latin.code).not.toBe(0);
    expect(latin.stderr).toMatch(/client_encoding LATIN1 is not supported through the broker/);
    const utf8 = await psql(h, s, ['-c', 'SELECT title FROM "bücher"'], { PGCLIENTENCODING: 'UTF8' });
    expect(utf8.stderr).toMatch(/denied by policy rule/);
    expect(utf8.stdout).not.toMatch(/geheim/);
  });

  it('accepts SQL_ASCII (what libpq sends under the C locale) and serves UTF8', async () => {
    const s = h.createSession({ access: 'read' });
    const w = await viaBroker(s, { client_encoding: 'SQL_ASCII' });
    expect(w.startupParameters.get('client_encoding')).toBe('UTF8');
    w.send(msg.query('SELECT 1'));
    const r = await w.readyAfter(1);
    w.close();
    expect(r.frames.filter((f) => f.type === 'D').map((f) => cells(f))).toEqual([['1']]);
  });

  it('SET client_encoding to anything but UTF8 is refused', async () => {
    const s = h.createSession({ access: 'write' });
    const w = await viaBroker(s);
    for (const enc of ['SJIS', 'LATIN1', 'sql_ascii']) {
      w.send(msg.query(`SET client_encoding = '${enc}'`));
      const r = await w.readyAfter(1);
      const err = r.frames.find((f) => f.type === 'E');
      expect(err && fields(err).M, enc).toMatch(/^hoop:/);
    }
    w.send(msg.query("SET client_encoding = 'UTF8'"), msg.query('SHOW client_encoding'));
    const ok = await w.readyAfter(2);
    expect(ok.frames.filter((f) => f.type === 'D').map((f) => cells(f)[0])).toEqual(['UTF8']);
    w.close();
  });
});

describe('the expected-reply queue keeps up with the server', () => {
  /** A portal in the open transaction whose (pass-everything) plan a lagging queue would reuse. */
  async function stalePortal(w: Wire): Promise<void> {
    w.send(msg.query('BEGIN'));
    await w.readyAfter(1);
    w.send(
      msg.parse('s_n', 'SELECT 1 AS n WHERE false'),
      msg.bind('p_n', 's_n'),
      msg.describe('P', 'p_n'),
      msg.sync(),
    );
    await w.readyAfter(1);
  }

  async function readEmailsAfterLag(w: Wire): Promise<Frame[]> {
    w.send(msg.execute('p_n'), msg.sync());
    const a = await w.readyAfter(1, 5000);
    w.send(msg.query('SELECT email FROM customers ORDER BY id'));
    const b = await w.readyAfter(1, 5000);
    return [...a.frames, ...b.frames];
  }

  it('an upstream error before a denied message in one batch: the next results are attributed and masked', async () => {
    const s = h.createSession({ access: 'read', mask: [{ column: 'customers.email' }] });
    const w = await viaBroker(s);
    w.send(
      msg.parse('', 'SELECT 1/0'),
      msg.bind('', ''),
      msg.execute(''),
      msg.parse('', 'DELETE FROM customers'), // denied under read; PostgreSQL skips it after the error
      msg.sync(),
    );
    const batch = await w.readyAfter(1);
    // PostgreSQL's answer: ParseComplete, the division error (at Bind: the planner folds 1/0), then
    // ReadyForQuery; the stand-in for the denied Parse was skipped like everything up to Sync
    expect(batch.frames.map((f) => f.type)).toEqual(['1', 'E', 'Z']);
    expect(fields(batch.frames[1]!).C).toBe('22012');
    // (before: the Sync's entry was left over, these rows met no plan and the connection was closed)
    w.send(msg.query('SELECT id, email FROM customers ORDER BY id'));
    const r = await w.readyAfter(1);
    w.send(
      msg.parse('', 'SELECT email FROM customers WHERE id = 1'),
      msg.bind('', ''),
      msg.execute(''),
      msg.sync(),
    );
    const r2 = await w.readyAfter(1);
    w.close();
    expect(r.closed || r2.closed).toBe(false);
    expect(r.frames.map((f) => f.type)).toEqual(['T', 'D', 'D', 'D', 'C', 'Z']);
    expect(r2.frames.map((f) => f.type)).toEqual(['1', '2', 'D', 'C', 'Z']);
    expect(rawEmails([...r.frames, ...r2.frames])).toEqual([]);
    expect(cells(r.frames[1]!)[1]).toMatch(/\*/);
  });

  it('a Sync sent during COPY FROM STDIN is ignored by the server, and by the queue', async () => {
    const s = h.createSession({ access: 'write', mask: [{ column: 'customers.email' }] });
    const w = await viaBroker(s);
    w.send(msg.query('CREATE TEMP TABLE copy_in (x text)'));
    await w.readyAfter(1);
    await stalePortal(w);
    w.send(msg.parse('', 'COPY copy_in FROM STDIN'), msg.bind('', ''), msg.execute(''), msg.sync());
    const started = await w.read((f) => f.type === 'G' || f.type === 'E');
    expect(started.frames.at(-1)?.type).toBe('G');
    w.send(msg.copyData('a\n'), msg.copyData('b\n'), msg.copyDone(), msg.sync());
    const done = await w.readyAfter(1);
    // one ReadyForQuery for two Syncs: the first one reached the server while it was copying
    expect(done.frames.map((f) => f.type)).toEqual(['C', 'Z']);
    const frames = await readEmailsAfterLag(w);
    w.send(msg.query('SELECT count(*) FROM copy_in'));
    const count = await w.readyAfter(1);
    w.close();
    expect(rawEmails(frames)).toEqual([]);
    expect(frames.filter((f) => f.type === 'D')).toHaveLength(3);
    expect(count.frames.filter((f) => f.type === 'D').map((f) => cells(f)[0])).toEqual(['2']);
  });

  it('COPY data that fails before the messages pipelined behind it: they run as the server runs them', async () => {
    // found by `npm run fuzz:pg` (seed 783442663): the queue counted the Parse as read by the COPY,
    // the server never read it during the COPY (the bad row failed first) and answered it after, and
    // the broker closed the connection over a disagreement the server never had
    const s = h.createSession({ access: 'write', mask: [{ column: 'customers.email' }] });
    const w = await viaBroker(s);
    w.send(msg.query('CREATE TEMP TABLE copy_bad (x int)'));
    await w.readyAfter(1);
    w.send(
      msg.query('COPY copy_bad FROM STDIN'),
      msg.copyData('bad row\n'),
      msg.parse('', 'SELECT email FROM customers ORDER BY id'),
      msg.bind('', ''),
      msg.execute(''),
      msg.sync(),
    );
    const r = await w.readyAfter(2);
    expect(r.closed).toBe(false);
    expect(r.frames.map((f) => f.type)).toEqual(['G', 'E', 'Z', '1', '2', 'D', 'D', 'D', 'C', 'Z']);
    expect(fields(r.frames[1]!).C).toBe('22P02');
    expect(rawEmails(r.frames)).toEqual([]);
    // and a Sync after the failing data is answered, as the server answers it
    w.send(msg.query('COPY copy_bad FROM STDIN'), msg.copyData('worse\n'), msg.sync());
    const r2 = await w.readyAfter(2);
    expect(r2.frames.map((f) => f.type)).toEqual(['G', 'E', 'Z', 'Z']);
    w.send(msg.query('SELECT email FROM customers ORDER BY id'));
    const r3 = await w.readyAfter(1);
    w.close();
    expect(r3.frames.filter((f) => f.type === 'D')).toHaveLength(3);
    expect(rawEmails(r3.frames)).toEqual([]);
  });
});

describe('mask rules name columns the way PostgreSQL reads identifiers', () => {
  it('quoted, mixed-case and non-ASCII names in rules match their columns (they were served raw)', async () => {
    const s = h.createSession({
      access: 'read',
      mask: [{ column: 'customers."name"' }, { column: '"People"."Email"' }, { column: '"People".näme' }],
    });
    const w = await viaBroker(s);
    w.send(
      msg.query('SELECT name FROM customers ORDER BY id'),
      msg.query('SELECT "Email", "näme" FROM "People" ORDER BY id'),
    );
    const r = await w.readyAfter(2);
    w.close();
    const values = r.frames.filter((f) => f.type === 'D').flatMap((f) => cells(f));
    expect(values).toHaveLength(7);
    for (const raw of ['Alice', 'Bob', 'Carol', 'p1@example.com', 'p2@example.com', 'Zoë', 'Åsa'])
      expect(values, raw).not.toContain(raw);
  });
});

describe('strict masks: positional ORDER BY, GROUP BY and DISTINCT ON name their select-list items', () => {
  it('refuses ordering, grouping or picking by a strict-masked column by position (a binary search recovered it)', async () => {
    const s = h.createSession({ access: 'read', mask: [{ column: 'customers.email', strict: true }] });
    const w = await viaBroker(s);
    const refused = [
      'SELECT id, email FROM customers ORDER BY 2',
      'SELECT id, email FROM customers ORDER BY 2 DESC, 1',
      'SELECT id, email FROM customers GROUP BY 1, 2',
      'SELECT DISTINCT ON (2) id, email FROM customers ORDER BY 2, id',
      'SELECT * FROM customers ORDER BY 3',
      'SELECT id, email FROM customers GROUP BY ROLLUP (1, 2)',
    ];
    for (const sql of refused) {
      w.send(msg.query(sql));
      const r = await w.readyAfter(1);
      const err = r.frames.find((f) => f.type === 'E');
      expect(err && fields(err).M, sql).toMatch(
        /^hoop: SELECT denied by policy rule "mask.strict: customers.email"/,
      );
      expect(
        r.frames.some((f) => f.type === 'D'),
        sql,
      ).toBe(false);
    }
    // by position of an unmasked column, and a constant ORDER BY expression, are fine
    w.send(msg.query('SELECT id, email FROM customers ORDER BY 1'));
    const ok = await w.readyAfter(1);
    w.close();
    expect(ok.frames.filter((f) => f.type === 'D')).toHaveLength(3);
    expect(rawEmails(ok.frames)).toEqual([]);
  });
});

describe("other sessions' statement text", () => {
  it('is masked in pg_stat_activity under a masking grant, and the functions returning it are refused', async () => {
    const needle = `needle-${Math.random().toString(36).slice(2)}@example.com`;
    // another job's connection, idle after a statement with a literal in it
    const other = await viaBroker(h.createSession({ access: 'read' }));
    other.send(msg.query(`SELECT count(*) FROM customers WHERE email = '${needle}'`));
    await other.readyAfter(1);
    const masked = await viaBroker(h.createSession({ access: 'read', mask: [{ detector: 'credit_card' }] }));
    masked.send(msg.query("SELECT pid, query FROM pg_stat_activity WHERE backend_type = 'client backend'"));
    const seen = await masked.readyAfter(1);
    masked.send(msg.query('SELECT * FROM pg_stat_activity'));
    const star = await masked.readyAfter(1);
    masked.send(msg.query('SELECT query FROM pg_stat_get_activity(NULL)'));
    const fn = await masked.readyAfter(1);
    masked.send(msg.query('SELECT upper(query) FROM pg_stat_activity'));
    const expr = await masked.readyAfter(1);
    // an unmasked session of the same role does see it: the setup is real
    const plain = await viaBroker(h.createSession({ access: 'read' }));
    plain.send(msg.query('SELECT query FROM pg_stat_activity'));
    const unmasked = await plain.readyAfter(1);
    for (const w of [other, masked, plain]) w.close();
    const text = (frames: Frame[]) =>
      frames
        .filter((f) => f.type === 'D')
        .map((f) => f.body.toString('utf8'))
        .join('\n');
    expect(text(unmasked.frames)).toContain(needle);
    expect(seen.frames.filter((f) => f.type === 'D').length).toBeGreaterThan(1);
    expect(text(seen.frames)).not.toContain(needle);
    expect(text(star.frames)).not.toContain('needle-');
    for (const r of [fn, expr]) {
      const err = r.frames.find((f) => f.type === 'E');
      expect(err && fields(err).M).toMatch(/^hoop: SELECT denied by policy rule "mask/);
      expect(text(r.frames)).not.toContain('needle-');
    }
  });
});
