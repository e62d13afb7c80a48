// Result-column origins: RowDescription names a column by (table OID, column number); masking rules
// name it "schema.table.column". A broker-owned side connection per target reads the upstream catalog
// by OID (never by name, so a client's search_path cannot matter) and caches what it learns.
import type { Logger } from 'pino';
import { classifySql } from '../../policy/sql/index.js';
import type { ClassifiedStatement } from '../../policy/sql/types.js';
import type { ViewColumns } from '../../policy/mask/views.js';
import { serialize } from 'pg-protocol';
import {
  BackendType,
  readDataRow,
  readNoticeFields,
  readRowDescription,
  type RowField,
} from './backend-messages.js';
import type { GatewayTarget } from './deps.js';
import { connectUpstream, type UpstreamConnection } from './upstream.js';

export interface TableColumns {
  /** "schema.table" */
  table: string;
  /** by column number */
  columns: Map<number, { name: string; typeOid: number; generated: boolean }>;
  /**
   * a view or materialized view outside pg_catalog and information_schema, or a partition or
   * inheritance child: its columns may pass a masked column on, so masking must find it traced
   * (TargetViews.traced) before trusting a plan for it
   */
  passesOn: boolean;
  loadedAt: number;
}

/** A function named by OID in a FunctionCall message. */
export interface FunctionInfo {
  schema: string;
  name: string;
  /** the result's type OID */
  returnType: number;
}

/** Catalog entries older than this are re-read: a column renamed outside the broker is noticed. */
export const CATALOG_TTL_MS = 60_000;
/** A view definition as described (its result columns) and classified (ViewLineage.definition). */
interface DescribedView {
  fields: RowField[];
  definition: ClassifiedStatement | null;
}

/** View definitions described per pipelined round trip (see CatalogResolver.readViews). */
const DESCRIBE_BATCH = 200;
/** How old the traced views may get before they are read again in the background (see cachedViews). */
export const VIEW_REFRESH_MS = 5_000;

/**
 * A view's (or materialized view's) result columns traced through its definition: the base column each
 * passes on unchanged, as PostgreSQL itself reports it when the definition is described (through
 * subqueries, not through other views: a source may be another view's column), or null for a computed
 * column. See policy/mask/views.ts for what masking makes of it.
 */
export type ViewLineage = ViewColumns;

/** A target's views, traced, and the names of every relation it has (to notice one created since). */
export interface TargetViews {
  views: ViewLineage[];
  /** OIDs of the views, materialized views, partitions and inheritance children traced in `views` */
  traced: ReadonlySet<number>;
  /** relname of every table, view, materialized view, partitioned and foreign table, in any schema */
  relations: ReadonlySet<string>;
  /** the same relations as `schema NUL relname` (see knowsRelation) */
  qualified: ReadonlySet<string>;
  /** views whose definitions are not proven read-only (a side-effect function, a user's function, an
   *  unreadable definition, or a view of that kind read): reading one runs it, so `read` refuses them */
  notReadOnly: Array<{ view: string; relname: string; why: string }>;
}

/**
 * Does the traced catalog know the relation a statement names ("rel" or "schema.rel", as the
 * classifier writes it)? Names may hold a '.' themselves, so every split of a qualified name is tried.
 */
export function knowsRelation(tv: TargetViews, name: string): boolean {
  if (tv.relations.has(name)) return true;
  for (let k = name.indexOf('.'); k >= 0; k = name.indexOf('.', k + 1))
    if (tv.qualified.has(`${name.slice(0, k)}\u0000${name.slice(k + 1)}`)) return true;
  return false;
}

/** Functions, operators, casts and domain constraints created by users (see CatalogResolver.cachedUserObjects). */
export interface UserObjects {
  /** names of functions created outside pg_catalog and information_schema */
  functions: ReadonlySet<string>;
  /** names of operators created there */
  operators: ReadonlySet<string>;
  /** pg_type names of the types a conversion to may run a user's function: the targets of casts users
   *  created with a function, and domains whose CHECK constraints call a function defined outside pg_catalog */
  castTargets: ReadonlySet<string>;
  /** the implicit ones among those casts, described ("mytype -> text via public.f(mytype)"): they may
   *  run in any expression, without a cast written */
  implicitCasts: string[];
}

/** One row per object: its kind (f, o, c, i) and its name or description. */
const NOT_EXTENSION_MEMBER = (catalog: string, alias: string): string =>
  `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                WHERE d.classid = 'pg_catalog.${catalog}'::pg_catalog.regclass
                  AND d.objid = ${alias}.oid AND d.deptype = 'e')`;
const USER_OBJECTS_SQL = `
SELECT 'f', p.proname::pg_catalog.text
  FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND ${NOT_EXTENSION_MEMBER('pg_proc', 'p')}
UNION
SELECT 'o', o.oprname::pg_catalog.text
  FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND ${NOT_EXTENSION_MEMBER('pg_operator', 'o')}
UNION
SELECT 'c', t.typname::pg_catalog.text
  FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_type t ON t.oid = c.casttarget
 WHERE c.castmethod = 'f' AND c.oid >= 16384 AND ${NOT_EXTENSION_MEMBER('pg_cast', 'c')}
UNION
SELECT 'c', t.typname::pg_catalog.text
  FROM pg_catalog.pg_type t
  JOIN pg_catalog.pg_constraint k ON k.contypid = t.oid
  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND d.objid = k.oid
                              AND d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass
  JOIN pg_catalog.pg_proc p ON p.oid = d.refobjid
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE t.typtype = 'd' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION
SELECT 'i', c.castsource::pg_catalog.regtype::pg_catalog.text || ' -> ' || c.casttarget::pg_catalog.regtype::pg_catalog.text
            || ' via ' || c.castfunc::pg_catalog.regprocedure::pg_catalog.text
  FROM pg_catalog.pg_cast c
 WHERE c.castmethod = 'f' AND c.castcontext = 'i' AND c.oid >= 16384 AND ${NOT_EXTENSION_MEMBER('pg_cast', 'c')}`;

/** the catalog connection's settings (see SideConnection) */
const CATALOG_PARAMETERS: ReadonlyArray<[string, string]> = [
  ['application_name', 'hoop-broker catalog'],
  ['client_encoding', 'UTF8'],
  // a reading blocked by another session's locks (DDL in an open transaction) fails in 2 s, not
  // holding up every other catalog lookup for the target (the caller then fails closed)
  ['options', '-c default_transaction_read_only=on -c statement_timeout=10000 -c lock_timeout=2000'],
];

/** Runs simple queries, one at a time, on a broker-owned connection to the target. */
export class SideConnection {
  private conn: UpstreamConnection | null = null;
  private connecting: Promise<UpstreamConnection> | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly gt: GatewayTarget,
    private readonly timeoutMs: number,
    private readonly parameters: ReadonlyArray<[string, string]> = CATALOG_PARAMETERS,
  ) {}

  private async open(): Promise<UpstreamConnection> {
    if (this.conn && !this.conn.socket.destroyed) return this.conn;
    this.connecting ??= (async () => {
      const r = await connectUpstream(this.gt, {
        parameters: new Map(this.parameters),
        timeoutMs: this.timeoutMs,
      });
      if (!r.ok) throw new Error(r.message);
      r.conn.socket.on('error', () => {});
      r.conn.socket.on('close', () => {
        if (this.conn === r.conn) this.conn = null;
      });
      this.conn = r.conn;
      return r.conn;
    })().finally(() => {
      this.connecting = null;
    });
    return this.connecting;
  }

  /** Run one simple query; rows as text cells. */
  query(sql: string): Promise<Array<Array<string | null>>> {
    return this.serialised((conn) => runSimpleQuery(conn, sql, this.timeoutMs));
  }

  /**
   * Parse and Describe each query (none is run), pipelined: each in its own Sync, so one that fails
   * (its Error in its place) does not stop the others.
   */
  describeEach(sqls: readonly string[]): Promise<Array<RowField[] | Error>> {
    return this.serialised((conn) => runDescribeEach(conn, sqls, this.timeoutMs));
  }

  /** One exchange at a time on the one connection, in call order. */
  private serialised<T>(exchangeOn: (conn: UpstreamConnection) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.closed) throw new Error('catalog connection closed');
      return exchangeOn(await this.open());
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => {});
    return p;
  }

  close(): void {
    this.closed = true;
    if (this.conn) {
      this.conn.socket.end(Buffer.from([0x58, 0, 0, 0, 4]));
      this.conn.socket.destroy();
    }
    this.conn = null;
  }
}

/**
 * Send `request` and read the answers up to its `syncs`-th ReadyForQuery, handing each message to
 * `onMessage` (ErrorResponse included) and telling `onReady` of each ReadyForQuery before the last.
 */
function exchangeEach(
  conn: UpstreamConnection,
  request: Buffer,
  syncs: number,
  timeoutMs: number,
  onMessage: (type: number, buf: Buffer, pos: number, end: number) => void,
  onReady: () => void,
): Promise<void> {
  const socket = conn.socket;
  return new Promise((resolve, reject) => {
    let buf = conn.leftover;
    conn.leftover = Buffer.alloc(0);
    let left = syncs;
    const timer = setTimeout(() => {
      cleanup();
      socket.destroy();
      reject(new Error('catalog query timed out'));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('catalog connection closed'));
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      let pos = 0;
      while (buf.length - pos >= 5) {
        const type = buf[pos]!;
        const end = pos + 1 + buf.readInt32BE(pos + 1);
        if (end > buf.length) break;
        if (type === BackendType.readyForQuery) {
          if (--left === 0) {
            cleanup();
            conn.leftover = buf.subarray(end);
            resolve();
            return;
          }
          onReady();
        } else {
          onMessage(type, buf, pos, end);
        }
        pos = end;
      }
      buf = buf.subarray(pos);
    };
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.resume();
    socket.write(request);
  });
}

/** Send `request` and read the answers up to ReadyForQuery, handing each message to `onMessage`. */
async function exchange(
  conn: UpstreamConnection,
  request: Buffer,
  timeoutMs: number,
  onMessage: (type: number, buf: Buffer, pos: number, end: number) => void,
): Promise<void> {
  let failure: string | null = null;
  await exchangeEach(
    conn,
    request,
    1,
    timeoutMs,
    (type, buf, pos, end) => {
      if (type !== BackendType.errorResponse) return onMessage(type, buf, pos, end);
      failure = errorText(buf, pos, end);
    },
    () => {},
  );
  if (failure !== null) throw new Error(`catalog query failed: ${failure}`);
}

/** An ErrorResponse as "SQLSTATE message". */
function errorText(buf: Buffer, pos: number, end: number): string {
  const f = new Map(readNoticeFields(buf, pos + 5, end));
  return `${f.get('C') ?? ''} ${f.get('M') ?? 'error'}`;
}

async function runSimpleQuery(
  conn: UpstreamConnection,
  sql: string,
  timeoutMs: number,
): Promise<Array<Array<string | null>>> {
  const rows: Array<Array<string | null>> = [];
  const text = Buffer.from(`${sql}\0`, 'utf8');
  const msg = Buffer.allocUnsafe(5 + text.length);
  msg[0] = 0x51;
  msg.writeInt32BE(4 + text.length, 1);
  text.copy(msg, 5);
  await exchange(conn, msg, timeoutMs, (type, buf, pos, end) => {
    if (type !== BackendType.dataRow) return;
    const cells = readDataRow(buf, pos + 5, end) ?? [];
    rows.push(cells.map((c) => (c === null ? null : c.toString('utf8'))));
  });
  return rows;
}

/**
 * Parse and Describe queries without running them (the unnamed statement), pipelined, each in its
 * own Sync: per query its result columns ([] for none), or why it could not be described.
 */
async function runDescribeEach(
  conn: UpstreamConnection,
  sqls: readonly string[],
  timeoutMs: number,
): Promise<Array<RowField[] | Error>> {
  const out: Array<RowField[] | Error> = [];
  if (sqls.length === 0) return out;
  let fields: RowField[] | null = null;
  let failure: string | null = null;
  const settle = (): void => {
    if (failure !== null) out.push(new Error(`catalog describe failed: ${failure}`));
    else out.push(fields ?? new Error('catalog describe: no RowDescription'));
    fields = null;
    failure = null;
  };
  const request: Buffer[] = [];
  for (const text of sqls)
    request.push(
      serialize.parse({ name: '', text, types: [] }),
      serialize.describe({ type: 'S', name: '' }),
      serialize.sync(),
    );
  await exchangeEach(
    conn,
    Buffer.concat(request),
    sqls.length,
    timeoutMs,
    (type, buf, pos, end) => {
      if (type === BackendType.rowDescription) fields = readRowDescription(buf, pos + 5, end);
      else if (type === BackendType.noData) fields = [];
      else if (type === BackendType.errorResponse) failure = errorText(buf, pos, end);
    },
    settle,
  );
  settle();
  return out;
}

/** The views (see TargetViews.notReadOnly) whose definitions, or the views they read, are not read-only. */
function notReadOnly(
  described: ReadonlyArray<{
    schema: string;
    relname: string;
    text: string | null;
    seen: DescribedView | null;
  }>,
): TargetViews['notReadOnly'] {
  const out: TargetViews['notReadOnly'] = [];
  const defs = described.map((d) => {
    let def = d.seen?.definition ?? null;
    if (!def && d.text !== null) {
      const cls = classifySql(d.text);
      def = cls.ok && cls.statements.length === 1 ? cls.statements[0]! : null;
    }
    return { view: `${d.schema}.${d.relname}`, relname: d.relname, def };
  });
  const pending = defs.filter((d) => {
    const why = !d.def
      ? 'its definition could not be read'
      : d.def.effect !== 'read'
        ? (d.def.effectReasons[0] ?? `${d.def.kind} is not read-only`)
        : d.def.forbidden[0];
    if (why === undefined) return true;
    out.push({ view: d.view, relname: d.relname, why });
    return false;
  });
  // reading a view runs the views it reads
  for (let added = true; added;) {
    added = false;
    for (let i = pending.length - 1; i >= 0; i--) {
      const d = pending[i]!;
      const inner = out.find((o) =>
        d.def!.tables.some((t) => t === o.relname || t === o.view || t.endsWith(`.${o.relname}`)),
      );
      if (!inner) continue;
      out.push({ view: d.view, relname: d.relname, why: `it reads ${inner.view}, and ${inner.why}` });
      pending.splice(i, 1);
      added = true;
    }
  }
  return out;
}

export class CatalogResolver {
  private readonly tables = new Map<number, TableColumns | null>();
  private readonly functions = new Map<number, { info: FunctionInfo | null; loadedAt: number }>();
  /** every view's lineage (see cachedViews) */
  private views: { lineage: TargetViews; loadedAt: number } | null = null;
  /** the last reading and what it was read from (an unchanged catalog gives back the same object) */
  private viewSnapshot: { key: string; lineage: TargetViews } | null = null;
  /** view definitions described, by "oid:text": a refresh describes only what changed */
  private describedViews = new Map<string, DescribedView>();
  /** the reading of the views under way, and one queued behind it (see loadViews) */
  private viewsRunning: Promise<TargetViews> | null = null;
  private viewsQueued: Promise<TargetViews> | null = null;
  /** functions, operators and casts users defined (see cachedUserObjects) */
  private userObjects: { objects: UserObjects; loadedAt: number } | null = null;
  private userObjectsLoad: Promise<UserObjects> | null = null;
  private userObjectsQueued: Promise<UserObjects> | null = null;
  private readonly side: SideConnection;
  /** bumped on invalidate(): mask plans cached under an older generation are not reused */
  generation = 0;

  constructor(
    gt: GatewayTarget,
    private readonly logger: Logger,
    timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.side = new SideConnection(gt, timeoutMs);
  }

  /** The cached entry for a table OID: a TableColumns, null (not a table we can see), or undefined (unknown/stale). */
  cached(oid: number): TableColumns | null | undefined {
    const t = this.tables.get(oid);
    if (t === undefined) return undefined;
    if (t !== null && this.now() - t.loadedAt > CATALOG_TTL_MS) return undefined;
    return t;
  }

  /** True when every OID is cached (so a plan can be made without waiting). */
  knows(oids: Iterable<number>): boolean {
    for (const oid of oids) if (oid !== 0 && this.cached(oid) === undefined) return false;
    return true;
  }

  /** Read the catalog for these table OIDs. Throws when the catalog cannot be read (callers fail closed). */
  async load(oids: Iterable<number>): Promise<void> {
    const wanted = [...new Set([...oids].filter((o) => o !== 0 && this.cached(o) === undefined))];
    if (wanted.length === 0) return;
    // OIDs are numbers we parsed ourselves: safe to inline.
    const list = wanted.map((o) => String(o >>> 0)).join(',');
    const rows = await this.side.query(
      `SELECT a.attrelid::pg_catalog.int8, n.nspname, c.relname, a.attnum, a.attname, a.atttypid::pg_catalog.int8, a.attgenerated <> '',
              (c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema'))
              OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid)
         FROM pg_catalog.pg_attribute a
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE a.attrelid IN (${list}) AND a.attnum > 0 AND NOT a.attisdropped`,
    );
    const loadedAt = this.now();
    const found = new Map<number, TableColumns>();
    for (const [relid, nsp, rel, attnum, attname, typid, generated, passesOn] of rows) {
      const oid = Number(relid);
      let t = found.get(oid);
      if (!t) {
        t = { table: `${nsp}.${rel}`, columns: new Map(), passesOn: passesOn === 't', loadedAt };
        found.set(oid, t);
      }
      t.columns.set(Number(attnum), {
        name: attname ?? '',
        typeOid: Number(typid),
        generated: generated === 't',
      });
    }
    for (const oid of wanted) this.tables.set(oid, found.get(oid) ?? null);
    this.logger.debug({ tables: wanted.length }, 'catalog: resolved column origins');
  }

  /** A function by OID as cached: its FunctionInfo, null (no such function), or undefined (unknown/stale). */
  cachedFunction(oid: number): FunctionInfo | null | undefined {
    const f = this.functions.get(oid);
    if (f === undefined || this.now() - f.loadedAt > CATALOG_TTL_MS) return undefined;
    return f.info;
  }

  /** Read a function's schema, name and result type by OID. Throws when the catalog cannot be read. */
  async loadFunction(oid: number): Promise<FunctionInfo | null> {
    const cached = this.cachedFunction(oid);
    if (cached !== undefined) return cached;
    // an OID we parsed ourselves (an unsigned 32-bit number): safe to inline
    const rows = await this.side.query(
      `SELECT n.nspname, p.proname, p.prorettype::pg_catalog.int8
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE p.oid = ${String(oid >>> 0)}`,
    );
    const row = rows[0];
    const info =
      row && row[0] != null && row[1] != null
        ? { schema: row[0], name: row[1], returnType: Number(row[2]) }
        : null;
    if (this.functions.size >= 10_000) this.functions.clear();
    this.functions.set(oid, { info, loadedAt: this.now() });
    return info;
  }

  /**
   * What users created with CREATE FUNCTION, CREATE OPERATOR, CREATE CAST and CREATE DOMAIN outside
   * pg_catalog and information_schema, as cached; undefined when not loaded or stale. Extensions' members are left
   * out (installed by the database owner; the known dangerous functions, dblink and friends, are
   * judged by name anyway). An unqualified call or operator with such a name may resolve to the user's
   * object rather than the built-in of that name (a better argument match, or a search_path that puts
   * pg_catalog later), and a cast to such a target type may run the user's function, so none of them
   * can be proven read-only by name.
   */
  cachedUserObjects(): UserObjects | undefined {
    const s = this.userObjects;
    if (s === null || this.now() - s.loadedAt > CATALOG_TTL_MS) return undefined;
    return s.objects;
  }

  /**
   * Read those objects (one query, shared by concurrent callers). `refresh`: from a reading that starts
   * after this call (one queued behind a reading already running, shared). Throws when the catalog
   * cannot be read.
   */
  loadUserObjects(refresh = false): Promise<UserObjects> {
    const cached = this.cachedUserObjects();
    if (cached && !refresh) return Promise.resolve(cached);
    if (!this.userObjectsLoad) return (this.userObjectsLoad = this.readUserObjects());
    if (!refresh) return this.userObjectsLoad;
    this.userObjectsQueued ??= this.userObjectsLoad
      .catch(() => undefined)
      .then(() => {
        this.userObjectsQueued = null;
        return (this.userObjectsLoad ??= this.readUserObjects());
      });
    return this.userObjectsQueued;
  }

  private readUserObjects(): Promise<UserObjects> {
    const generation = this.generation;
    const reading: Promise<UserObjects> = this.side
      .query(USER_OBJECTS_SQL)
      .then((rows) => {
        const functions = new Set<string>();
        const operators = new Set<string>();
        const castTargets = new Set<string>();
        const implicitCasts: string[] = [];
        for (const [what, name] of rows) {
          if (name == null) continue;
          if (what === 'f') functions.add(name);
          else if (what === 'o') operators.add(name);
          else if (what === 'c') castTargets.add(name);
          else if (what === 'i') implicitCasts.push(name);
        }
        const objects: UserObjects = { functions, operators, castTargets, implicitCasts };
        // a DDL statement through the broker while this ran: the answer may predate it; not cached
        if (generation === this.generation) this.userObjects = { objects, loadedAt: this.now() };
        return objects;
      })
      .finally(() => {
        if (this.userObjectsLoad === reading) this.userObjectsLoad = null;
      });
    return reading;
  }

  /** Every view's lineage, as cached; undefined when not loaded or stale. */
  cachedViews(): TargetViews | undefined {
    const v = this.views;
    if (v === null) return undefined;
    const age = this.now() - v.loadedAt;
    if (age > CATALOG_TTL_MS) return undefined;
    // read again behind the answer every few seconds: a view redefined outside the broker (CREATE OR
    // REPLACE, same name) is traced within VIEW_REFRESH_MS plus one reading
    if (age > VIEW_REFRESH_MS && this.viewsRunning === null && this.viewsQueued === null) {
      this.loadViews(true).catch((err: unknown) =>
        this.logger.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'catalog: refreshing the view lineage failed',
        ),
      );
    }
    return v.lineage;
  }

  /**
   * Trace every view and materialized view outside pg_catalog and information_schema: its definition
   * (pg_get_viewdef) is described on the side connection, never run. `refresh`: the answer must come
   * from a reading that starts after this call (a statement names a relation the last reading did not
   * know; a reading already running may have missed it), so one is queued behind a running one, and
   * every refresh asked for meanwhile shares it. Throws when the catalog cannot be read; a definition
   * that cannot be described is traced as computed columns only (fail closed).
   */
  loadViews(refresh = false): Promise<TargetViews> {
    const v = this.views;
    if (!refresh && v !== null && this.now() - v.loadedAt <= CATALOG_TTL_MS)
      return Promise.resolve(v.lineage);
    if (!refresh && this.viewsRunning) return this.viewsRunning;
    if (this.viewsQueued) return this.viewsQueued;
    if (!this.viewsRunning) return (this.viewsRunning = this.startViewsReading());
    const queued: Promise<TargetViews> = this.viewsRunning
      .catch(() => undefined)
      .then(() => {
        this.viewsQueued = null;
        return (this.viewsRunning = this.startViewsReading());
      });
    this.viewsQueued = queued;
    return queued;
  }

  private startViewsReading(): Promise<TargetViews> {
    const generation = this.generation;
    const reading: Promise<TargetViews> = this.readViews()
      .then((lineage) => {
        // a DDL statement through the broker while this ran: the answer may predate it; not cached
        if (generation === this.generation) this.views = { lineage, loadedAt: this.now() };
        return lineage;
      })
      .finally(() => {
        if (this.viewsRunning === reading) this.viewsRunning = null;
      });
    return reading;
  }

  private async readViews(): Promise<TargetViews> {
    const relations = new Set<string>();
    const qualified = new Set<string>();
    for (const [nsp, name] of await this.side.query(
      `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')`,
    )) {
      if (name == null) continue;
      relations.add(name);
      qualified.add(`${nsp}\u0000${name}`);
    }
    const rows = await this.side.query(
      `SELECT c.oid::pg_catalog.int8, n.nspname, c.relname, pg_catalog.pg_get_viewdef(c.oid)
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')`,
    );
    // partitions and inheritance children: a parent's masked column is theirs too, under their name
    const inherits = await this.side.query(
      `SELECT i.inhrelid::pg_catalog.int8, i.inhparent::pg_catalog.int8, n.nspname, c.relname
         FROM pg_catalog.pg_inherits i
         JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'f')`,
    );
    // unchanged since the last reading (the common case of a refresh): the same answer, the same object
    const key = [qualified, rows, inherits]
      .map((part) => [...part].map((r) => (Array.isArray(r) ? r.join('\u0000') : r)).join('\u0001'))
      .join('\u0002');
    if (this.viewSnapshot?.key === key) return this.viewSnapshot.lineage;
    const described: Array<{
      oid: number;
      schema: string;
      relname: string;
      text: string | null;
      seen: DescribedView | null;
    }> = [];
    const describedBefore = this.describedViews;
    this.describedViews = new Map();
    // only definitions not described before (by OID and text), pipelined in batches
    const toDescribe = rows.filter(
      ([oid, , , text]) => text != null && !describedBefore.has(`${oid}:${text}`),
    );
    const fresh = new Map<string, RowField[] | Error>();
    for (let k = 0; k < toDescribe.length; k += DESCRIBE_BATCH) {
      const batch = toDescribe.slice(k, k + DESCRIBE_BATCH);
      const answers = await this.side.describeEach(batch.map((r) => r[3]!));
      batch.forEach(([oid, , , text], i) => fresh.set(`${oid}:${text}`, answers[i]!));
    }
    for (const [oid, nsp, rel, text] of rows) {
      let seen: DescribedView | null = null;
      if (text != null) {
        const key = `${oid}:${text}`;
        seen = describedBefore.get(key) ?? null;
        const answer = seen ? seen.fields : fresh.get(key);
        if (answer instanceof Error || answer === undefined) {
          this.logger.warn(
            { view: `${nsp}.${rel}`, err: answer?.message ?? 'not described' },
            'catalog: a view definition could not be described; its computed columns count as masked',
          );
        } else {
          if (!seen) {
            // classified once per definition (the parser is the costly part of a reading)
            const cls = classifySql(text);
            seen = {
              fields: answer,
              definition: cls.ok && cls.statements.length === 1 ? cls.statements[0]! : null,
            };
          }
          this.describedViews.set(key, seen);
        }
      }
      described.push({ oid: Number(oid), schema: nsp ?? '', relname: rel ?? '', text: text ?? null, seen });
    }
    const oids = new Set<number>();
    for (const [child, parent] of inherits) oids.add(Number(child)).add(Number(parent));
    for (const d of described) {
      oids.add(d.oid);
      for (const f of d.seen?.fields ?? []) if (f.tableOid !== 0) oids.add(f.tableOid);
    }
    // the views' own columns and their sources' names (load skips what is cached)
    if (oids.size > 0) await this.load(oids);
    const views = described.map((d): ViewLineage => {
      const own = this.cached(d.oid);
      const names = own ? [...own.columns.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c.name) : [];
      const columns = names.map((name, i) => {
        const f = d.seen?.fields[i];
        const t = f && f.tableOid !== 0 ? this.cached(f.tableOid) : null;
        const col = t && f ? t.columns.get(f.columnNumber) : undefined;
        return { name, source: t && col ? { table: t.table, column: col.name } : null };
      });
      const definition = d.seen?.definition ?? null;
      const dotted = `${d.schema}${d.relname}`.includes('.') || names.some((n) => n.includes('.'));
      return { view: `${d.schema}.${d.relname}`, relname: d.relname, dotted, columns, definition };
    });
    // a child's columns pass its parent's same-named columns on (inheritance keeps names); it computes nothing
    const computesNothing = classifySql('SELECT 1');
    for (const [childOid, parentOid, nsp, rel] of inherits) {
      const child = this.cached(Number(childOid));
      const parent = this.cached(Number(parentOid));
      if (!child || !parent || !computesNothing.ok) continue;
      const parentColumns = new Set([...parent.columns.values()].map((c) => c.name));
      const names = [...child.columns.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c.name);
      views.push({
        view: `${nsp}.${rel}`,
        relname: rel ?? '',
        dotted: `${nsp}${rel}`.includes('.') || names.some((n) => n.includes('.')),
        columns: names.map((name) => ({
          name,
          source: parentColumns.has(name) ? { table: parent.table, column: name } : null,
        })),
        definition: computesNothing.statements[0]!,
      });
    }
    const traced = new Set<number>(described.map((d) => d.oid));
    for (const [child] of inherits) traced.add(Number(child));
    const lineage: TargetViews = { views, traced, relations, qualified, notReadOnly: notReadOnly(described) };
    this.viewSnapshot = { key, lineage };
    return lineage;
  }

  /** Forget everything (after DDL through the broker). */
  invalidate(): void {
    this.tables.clear();
    this.functions.clear();
    this.userObjects = null;
    this.views = null;
    this.viewSnapshot = null;
    // describedViews stays: a description is keyed by the view's OID and its definition's text, and
    // a change that could alter it (a renamed column, a replaced definition) changes that text
    this.generation++;
  }

  close(): void {
    this.side.close();
  }
}
