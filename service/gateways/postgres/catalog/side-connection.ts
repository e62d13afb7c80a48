// The catalog's own small PostgreSQL client: a broker-owned connection per target that runs simple
// queries and describes statements (Parse + Describe, never run), one exchange at a time.
import { serialize } from 'pg-protocol';
import {
  BackendType,
  readDataRow,
  readNoticeFields,
  readRowDescription,
  type RowField,
} from '../backend-messages.js';
import type { GatewayTarget } from '../deps.js';
import { connectUpstream, type UpstreamConnection } from '../upstream.js';

/** the catalog connection's settings (see SideConnection) */
const CATALOG_PARAMETERS: ReadonlyArray<[string, string]> = [
  ['application_name', 'hoop-broker catalog'],
  ['client_encoding', 'UTF8'],
  // a reading blocked by another session's locks (DDL in an open transaction) fails in 2 s, not
  // holding up every other catalog lookup for the target (the caller then fails closed)
  ['options', '-c default_transaction_read_only=on -c statement_timeout=10000 -c lock_timeout=2000'],
];

/**
 * The connection failed under an exchange (it timed out, or closed), as opposed to the server
 * answering with an error. The exchanges are read-only, so such a failure is retried once on a new
 * connection: under heavy CPU load a single slow answer used to deny every other session's
 * statements that waited on this target's catalog.
 */
export class CatalogTransportError extends Error {}

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
      try {
        return await exchangeOn(await this.open());
      } catch (err) {
        if (!(err instanceof CatalogTransportError) || this.closed) throw err;
        // read-only, so safe to ask again; once, on a new connection (the old one is destroyed)
        this.conn?.socket.destroy();
        this.conn = null;
        return exchangeOn(await this.open());
      }
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
      reject(new CatalogTransportError(`catalog query timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.pause();
    };
    const onClose = (): void => {
      cleanup();
      reject(new CatalogTransportError('catalog connection closed'));
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
