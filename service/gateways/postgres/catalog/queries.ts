// The SQL the catalog reads, by OID or over the whole catalog, never by a name a client chose.

/** One row per object: its kind (f, o, c, i) and its name or description. */
const NOT_EXTENSION_MEMBER = (catalog: string, alias: string): string =>
  `NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                WHERE d.classid = 'pg_catalog.${catalog}'::pg_catalog.regclass
                  AND d.objid = ${alias}.oid AND d.deptype = 'e')`;
/** Functions (f), operators (o), cast targets and domains (c) and implicit casts (i) users created. */
export const USER_OBJECTS_SQL = `
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

/** Columns of these tables (OIDs the broker parsed itself, inlined), and whether each may pass a masked column on. */
export const tableColumnsSql = (oids: readonly number[]): string =>
  `SELECT a.attrelid::pg_catalog.int8, n.nspname, c.relname, a.attnum, a.attname, a.atttypid::pg_catalog.int8, a.attgenerated <> '',
              (c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema'))
              OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid)
         FROM pg_catalog.pg_attribute a
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE a.attrelid IN (${oids.map((o) => String(o >>> 0)).join(',')}) AND a.attnum > 0 AND NOT a.attisdropped`;

/** A function's schema, name and result type by OID (an unsigned 32-bit number the broker parsed, inlined). */
export const functionSql = (oid: number): string =>
  `SELECT n.nspname, p.proname, p.prorettype::pg_catalog.int8
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
        WHERE p.oid = ${String(oid >>> 0)}`;

/** Every relation a statement may name. */
export const RELATIONS_SQL = `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')`;

/** Views and materialized views outside the system schemas, with their definitions. */
export const VIEWS_SQL = `SELECT c.oid::pg_catalog.int8, n.nspname, c.relname, pg_catalog.pg_get_viewdef(c.oid)
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')`;

/** Partitions and inheritance children, with their parents. */
export const INHERITS_SQL = `SELECT i.inhrelid::pg_catalog.int8, i.inhparent::pg_catalog.int8, n.nspname, c.relname
         FROM pg_catalog.pg_inherits i
         JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'f')`;
