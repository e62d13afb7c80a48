// The PostgreSQL store, for several broker replicas sharing state. Same SQL as the embedded store
// (sql-store.ts); this file only connects a `pg` Pool to it. Statements are named, so each pooled
// connection parses one once. Cross-replica ordering comes from row locks (appendEvents, endSession),
// the token_uses primary key (openSession) and an advisory lock (migrations).
import pg from 'pg';
import type { SqlDriver, SqlResult, SqlRunner, Statement } from './sql.js';
import { SqlStore } from './sql-store.js';

export interface PostgresStoreOptions {
  /** connections in the pool (default 10) */
  poolSize?: number;
  /** TLS to the database: false/absent = none, true = verify against the system CAs, or tls options */
  ssl?: pg.PoolConfig['ssl'];
  /** give up connecting after this long (default 10 s) */
  connectTimeoutMs?: number;
  /** server-side limit per statement, including lock waits (default 30 s) */
  statementTimeoutMs?: number;
  /** errors of idle pooled connections (the server restarted, …); the next query reconnects */
  onIdleError?: (err: Error) => void;
  /**
   * Prepare each statement once per connection (default true). Set false behind PgBouncer in transaction
   * pooling mode older than 1.21, which cannot route named prepared statements.
   */
  namedStatements?: boolean;
}

type Run = (
  client: pg.PoolClient,
  statement: Statement,
  params: readonly unknown[],
) => Promise<pg.QueryResult>;

const runNamed: Run = (client, statement, params) =>
  client.query({ name: statement.name, text: statement.text, values: [...params] });
const runUnnamed: Run = (client, statement, params) => client.query(statement.text, [...params]);

function normalise<Row>(r: pg.QueryResult): SqlResult<Row> {
  return { rows: r.rows as Row[], rowCount: r.rowCount ?? r.rows.length };
}

/**
 * A commit must be on disk before the API answers. A server, database or role configured with
 * synchronous_commit=off acknowledges commits it can still lose, so each connection switches it on
 * before its first use; stronger settings (remote_apply, …) are left alone.
 */
const DURABLE_COMMITS =
  "SELECT set_config('synchronous_commit', 'on', false) WHERE current_setting('synchronous_commit') = 'off'";

class PgDriver implements SqlDriver {
  readonly kind = 'postgres' as const;
  readonly #pool: pg.Pool;
  readonly #run: Run;
  readonly #prepared = new WeakSet<pg.PoolClient>();

  constructor(pool: pg.Pool, run: Run) {
    this.#pool = pool;
    this.#run = run;
  }

  /**
   * A pooled connection for `fn`. It goes back to the pool unless `fn` failed with something other than
   * an SQL error or called `discard` (pg-pool also drops connections that have ended).
   */
  async #withClient<T>(fn: (client: pg.PoolClient, discard: () => void) => Promise<T>): Promise<T> {
    const client = await this.#pool.connect();
    let broken = false;
    try {
      if (!this.#prepared.has(client)) {
        await client.query(DURABLE_COMMITS);
        this.#prepared.add(client);
      }
      return await fn(client, () => {
        broken = true;
      });
    } catch (err) {
      if (!(err instanceof pg.DatabaseError)) broken = true;
      throw err;
    } finally {
      client.release(broken);
    }
  }

  query<Row>(statement: Statement, params: readonly unknown[]): Promise<SqlResult<Row>> {
    return this.#withClient(async (client) => normalise<Row>(await this.#run(client, statement, params)));
  }

  async exec(script: string): Promise<void> {
    await this.#withClient((client) => client.query(script));
  }

  transaction<T>(fn: (tx: SqlRunner) => Promise<T>): Promise<T> {
    return this.#withClient(async (client, discard) => {
      await client.query('BEGIN');
      try {
        const result = await fn({
          query: async <Row>(statement: Statement, params: readonly unknown[]) =>
            normalise<Row>(await this.#run(client, statement, params)),
          exec: async (script: string) => {
            await client.query(script);
          },
        });
        await client.query('COMMIT');
        return result;
      } catch (err) {
        // If even ROLLBACK fails, the connection's state is unknown: never reuse it.
        await client.query('ROLLBACK').catch(discard);
        throw err;
      }
    });
  }

  close(): Promise<void> {
    // pg-pool waits for checked-out clients to be released before ending them.
    return this.#pool.end();
  }
}

/** Open a pool to PostgreSQL. Connects lazily (the first call); does not migrate. */
export async function openPostgresStore(url: string, opts: PostgresStoreOptions = {}): Promise<SqlStore> {
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    // Never echo the URL: it usually carries the password.
    throw new Error('store.url is not a valid URL (expected postgres://user:password@host:port/database)');
  }
  if (protocol !== 'postgres:' && protocol !== 'postgresql:') {
    throw new Error(`store.url must use postgres:// or postgresql://, not ${protocol}//`);
  }
  const poolSize = opts.poolSize ?? 10;
  if (!Number.isSafeInteger(poolSize) || poolSize < 1)
    throw new RangeError('poolSize must be a positive integer');
  const config: pg.PoolConfig = {
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: opts.statementTimeoutMs ?? 30_000,
    // A broker stuck mid-transaction must not hold a session's row lock forever.
    idle_in_transaction_session_timeout: 60_000,
    application_name: 'hoop-broker',
  };
  if (opts.ssl !== undefined) config.ssl = opts.ssl;
  const pool = new pg.Pool(config);
  // Without a listener, an idle connection's error (server restart) would crash the process.
  pool.on('error', (err) => opts.onIdleError?.(err));
  return new SqlStore(new PgDriver(pool, opts.namedStatements === false ? runUnnamed : runNamed));
}
