// View lineage: every view's (and materialized view's, partition's, inheritance child's) columns
// traced to the base columns they pass on, by describing each definition on the side connection
// (pg_get_viewdef, never run) and reading the inheritance links. What masking and the read rules make
// of it is the policy's (policy/mask/views.ts, policy/pg/views.ts).
import type { Logger } from 'pino';
import type { TargetViews, ViewLineage } from '../../../policy/pg/facts.js';
import { type ViewDefinition, viewsNotReadOnly } from '../../../policy/pg/views.js';
import { classifySql } from '../../../policy/sql/index.js';
import type { ClassifiedStatement } from '../../../policy/sql/types.js';
import type { RowField } from '../backend-messages.js';
import { INHERITS_SQL, RELATIONS_SQL, VIEWS_SQL } from './queries.js';
import type { TableColumns } from './resolver.js';
import type { SideConnection } from './side-connection.js';

/** A view definition as described (its result columns) and classified (ViewLineage.definition). */
interface DescribedView {
  fields: RowField[];
  definition: ClassifiedStatement | null;
}

/** View definitions described per pipelined round trip (see CatalogResolver.readViews). */
const DESCRIBE_BATCH = 200;
/** Where the tracer finds tables' columns (the resolver's cache, which it fills). */
export interface TableSource {
  load(oids: Iterable<number>): Promise<void>;
  cached(oid: number): TableColumns | null | undefined;
}

interface DescribedRow {
  oid: number;
  schema: string;
  relname: string;
  text: string | null;
  seen: DescribedView | null;
}

/** A view's definition as the policy judges it: described and classified, or classified from its text. */
function definitions(described: readonly DescribedRow[]): ViewDefinition[] {
  return described.map((d) => {
    let definition = d.seen?.definition ?? null;
    if (!definition && d.text !== null) {
      const cls = classifySql(d.text);
      definition = cls.ok && cls.statements.length === 1 ? cls.statements[0]! : null;
    }
    return { view: `${d.schema}.${d.relname}`, relname: d.relname, definition };
  });
}

export class ViewTracer {
  /** the last reading and what it was read from (an unchanged catalog gives back the same object) */
  private snapshot: { key: string; lineage: TargetViews } | null = null;
  /** view definitions described, by "oid:text": a refresh describes only what changed */
  private described = new Map<string, DescribedView>();

  constructor(
    private readonly side: SideConnection,
    private readonly tables: TableSource,
    private readonly logger: Logger,
  ) {}

  /**
   * After DDL through the broker. The descriptions stay: each is keyed by the view's OID and its
   * definition's text, and a change that could alter it (a renamed column, a replaced definition)
   * changes that text.
   */
  forget(): void {
    this.snapshot = null;
  }

  /** Trace every view, materialized view, partition and inheritance child (see CatalogResolver.loadViews). */
  async read(): Promise<TargetViews> {
    const relations = new Set<string>();
    const qualified = new Set<string>();
    for (const [nsp, name] of await this.side.query(RELATIONS_SQL)) {
      if (name == null) continue;
      relations.add(name);
      qualified.add(`${nsp}\u0000${name}`);
    }
    const rows = await this.side.query(VIEWS_SQL);
    // partitions and inheritance children: a parent's masked column is theirs too, under their name
    const inherits = await this.side.query(INHERITS_SQL);
    // unchanged since the last reading (the common case of a refresh): the same answer, the same object
    const key = [qualified, rows, inherits]
      .map((part) => [...part].map((r) => (Array.isArray(r) ? r.join('\u0000') : r)).join('\u0001'))
      .join('\u0002');
    if (this.snapshot?.key === key) return this.snapshot.lineage;
    const described: DescribedRow[] = [];
    const describedBefore = this.described;
    this.described = new Map();
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
          this.described.set(key, seen);
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
    if (oids.size > 0) await this.tables.load(oids);
    const views = described.map((d): ViewLineage => {
      const own = this.tables.cached(d.oid);
      const names = own ? [...own.columns.entries()].sort((a, b) => a[0] - b[0]).map(([, c]) => c.name) : [];
      const columns = names.map((name, i) => {
        const f = d.seen?.fields[i];
        const t = f && f.tableOid !== 0 ? this.tables.cached(f.tableOid) : null;
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
      const child = this.tables.cached(Number(childOid));
      const parent = this.tables.cached(Number(parentOid));
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
    const lineage: TargetViews = {
      views,
      traced,
      relations,
      qualified,
      notReadOnly: viewsNotReadOnly(definitions(described)),
    };
    this.snapshot = { key, lineage };
    return lineage;
  }
}
