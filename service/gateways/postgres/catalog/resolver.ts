// Result-column origins: RowDescription names a column by (table OID, column number); masking rules
// name it "schema.table.column". A broker-owned side connection per target (side-connection.ts) reads
// the upstream catalog by OID (never by name, so a client's search_path cannot matter); this module
// caches what it learns: tables' columns, functions by OID, the objects users created, and the views'
// lineage (lineage.ts). The facts it hands the policy are typed in policy/pg/facts.ts.
import type { Logger } from 'pino';
import type { TargetViews, UserObjects } from '../../../policy/pg/facts.js';
import type { GatewayTarget } from '../deps.js';
import { ViewTracer } from './lineage.js';
import { functionSql, tableColumnsSql, USER_OBJECTS_SQL } from './queries.js';
import { SideConnection } from './side-connection.js';

export type { TargetViews, UserObjects, ViewLineage } from '../../../policy/pg/facts.js';
export { knowsRelation } from '../../../policy/pg/facts.js';

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
/** How old the traced views may get before they are read again in the background (see cachedViews). */
export const VIEW_REFRESH_MS = 5_000;

export class CatalogResolver {
  private readonly tables = new Map<number, TableColumns | null>();
  private readonly functions = new Map<number, { info: FunctionInfo | null; loadedAt: number }>();
  /** every view's lineage (see cachedViews) */
  private views: { lineage: TargetViews; loadedAt: number } | null = null;
  /** traces the views (lineage.ts), remembering what it described */
  private readonly tracer: ViewTracer;
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
    this.tracer = new ViewTracer(this.side, this, logger);
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
    const rows = await this.side.query(tableColumnsSql(wanted));
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
    const rows = await this.side.query(functionSql(oid));
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
    const reading: Promise<TargetViews> = this.tracer
      .read()
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

  /** Forget everything (after DDL through the broker). */
  invalidate(): void {
    this.tables.clear();
    this.functions.clear();
    this.userObjects = null;
    this.views = null;
    this.tracer.forget();
    this.generation++;
  }

  close(): void {
    this.side.close();
  }
}
