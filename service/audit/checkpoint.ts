// Signed checkpoints: tamper evidence beyond one session's chain. A transcript's hash chain shows an
// event changed inside it, but not a whole session deleted, nor its tail cut off with the head moved
// back. So every interval (when anything changed) the broker signs, with an Ed25519 key, the list of
// every session's chain head, and links each checkpoint to the one before. `hoop-broker audit verify`
// checks the signatures and the links, that no session vanished between checkpoints except those
// retention pruned (named in the next checkpoint), and that each transcript still reaches the head the
// latest checkpoint signed.
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import { canonicalJson, type TranscriptEvent, verifyChain } from './event.js';
import { type ChainHead, type CheckpointRow, EXPORT_START, type Store } from '../store/store.js';

export interface CheckpointKey {
  privateKey: KeyObject;
  publicKeyPem: string;
  /** hex SHA-256 of the public key's DER (SPKI), first 16 bytes */
  keyId: string;
}

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 32);
}

export function checkpointKeyFromPem(privatePem: string): CheckpointKey {
  const privateKey = createPrivateKey(privatePem);
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new Error('the checkpoint key must be an Ed25519 private key (PEM)');
  const publicKey = createPublicKey(privateKey);
  return {
    privateKey,
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

/** The key in data_dir/checkpoint/signing-key.pem, created (0600) on first start. */
export async function dataDirCheckpointKey(dataDir: string): Promise<CheckpointKey> {
  const dir = join(dataDir, 'checkpoint');
  const file = join(dir, 'signing-key.pem');
  try {
    return checkpointKeyFromPem(await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  await writeFile(file, pem, { mode: 0o600, flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err; // another process made it first: use that one
  });
  await chmod(file, 0o600);
  return checkpointKeyFromPem(await readFile(file, 'utf8'));
}

/** What a checkpoint signs. Heads are [session id, head seq, head hash], sorted by id. */
export interface CheckpointBody {
  v: 1;
  seq: number;
  at: string;
  /** hex SHA-256 of the previous checkpoint's body; null for the first */
  prev: string | null;
  key_id: string;
  sessions: [string, number, string][];
  /** sessions retention removed since the previous checkpoint, with their last head */
  pruned: [string, number, string][];
}

const headTuple = (h: ChainHead): [string, number, string] => [h.id, h.head_seq, h.head_hash];
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export function makeCheckpoint(
  prev: CheckpointRow | null,
  heads: readonly ChainHead[],
  pruned: readonly ChainHead[],
  now: Date,
  key: CheckpointKey,
): CheckpointRow {
  const body: CheckpointBody = {
    v: 1,
    seq: (prev?.seq ?? 0) + 1,
    at: now.toISOString(),
    prev: prev ? sha256(prev.body) : null,
    key_id: key.keyId,
    sessions: [...heads].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map(headTuple),
    pruned: [...pruned].sort((a, b) => (a.id < b.id ? -1 : 1)).map(headTuple),
  };
  const text = canonicalJson(body);
  return {
    seq: body.seq,
    at: now,
    body: text,
    signature: sign(null, Buffer.from(text), key.privateKey).toString('base64'),
    key_id: key.keyId,
  };
}

export interface CheckpointProblem {
  checkpoint?: number;
  session?: string;
  problem: string;
}

export interface SequenceResult {
  problems: CheckpointProblem[];
  /** the latest checkpoint's body, when its signature verified */
  latest: CheckpointBody | null;
  checked: number;
}

/**
 * Check a run of checkpoints (ascending, as stored): each signed by a trusted key, each linked to its
 * predecessor, and no session of one missing from the next unless named as pruned there; heads never
 * move back. The first may link to one retention already removed.
 */
export function verifyCheckpointSequence(
  rows: readonly Pick<CheckpointRow, 'seq' | 'body' | 'signature' | 'key_id'>[],
  trusted: ReadonlyMap<string, KeyObject>,
): SequenceResult {
  const problems: CheckpointProblem[] = [];
  let previous: { row: (typeof rows)[number]; body: CheckpointBody } | null = null;
  let latest: CheckpointBody | null = null;
  for (const row of rows) {
    let body: CheckpointBody;
    try {
      body = JSON.parse(row.body) as CheckpointBody;
    } catch {
      problems.push({ checkpoint: row.seq, problem: 'the body is not JSON' });
      previous = null;
      continue;
    }
    const key = trusted.get(body.key_id);
    if (!key)
      problems.push({ checkpoint: row.seq, problem: `signed by key ${body.key_id}, which is not trusted` });
    else if (!verify(null, Buffer.from(row.body), key, Buffer.from(row.signature, 'base64')))
      problems.push({
        checkpoint: row.seq,
        problem: 'the signature does not verify: the checkpoint was altered',
      });
    if (body.seq !== row.seq || body.key_id !== row.key_id)
      problems.push({ checkpoint: row.seq, problem: 'the stored row does not match its signed body' });
    if (previous) {
      if (body.seq !== previous.body.seq + 1)
        problems.push({ checkpoint: row.seq, problem: `checkpoint ${previous.body.seq + 1} is missing` });
      else if (body.prev !== sha256(previous.row.body))
        problems.push({ checkpoint: row.seq, problem: 'it does not link to the checkpoint before it' });
      const now = new Map(body.sessions.map(([id, seq]) => [id, seq]));
      const pruned = new Set(body.pruned.map(([id]) => id));
      for (const [id, seq] of previous.body.sessions) {
        const head = now.get(id);
        if (head === undefined && !pruned.has(id))
          problems.push({
            checkpoint: row.seq,
            session: id,
            problem: 'the session vanished without being pruned',
          });
        else if (head !== undefined && head < seq)
          problems.push({
            checkpoint: row.seq,
            session: id,
            problem: `its head moved back from seq ${seq} to ${head}`,
          });
      }
    }
    previous = { row, body };
    latest = key ? body : null;
  }
  return { problems, latest, checked: rows.length };
}

/**
 * Check that each session of a checkpoint still has its transcript up to the signed head: deleted
 * (no transcript), truncated (fewer events), altered (another hash at that seq, or a broken chain).
 */
export async function verifyHeadsAgainstTranscripts(
  sessions: readonly [string, number, string][],
  events: (sessionId: string) => Promise<TranscriptEvent[] | null>,
): Promise<CheckpointProblem[]> {
  const problems: CheckpointProblem[] = [];
  for (const [id, seq, hash] of sessions) {
    const list = await events(id);
    if (list === null) {
      problems.push({ session: id, problem: `deleted: the checkpoint signed its head at seq ${seq}` });
      continue;
    }
    const chain = verifyChain(list);
    if (!chain.ok)
      problems.push({ session: id, problem: `its chain breaks at seq ${chain.seq}: ${chain.problem}` });
    if (list.length < seq)
      problems.push({
        session: id,
        problem: `truncated: ${list.length} events, the checkpoint signed seq ${seq}`,
      });
    else if (list[seq - 1]?.hash !== hash)
      problems.push({
        session: id,
        problem: `altered: the event at seq ${seq} is not the one the checkpoint signed`,
      });
  }
  return problems;
}

/** The lease name the checkpoint writer takes in the store (one replica writes at a time). */
const CHECKPOINT_LEASE = '~checkpoints';

export interface CheckpointerOptions {
  store: Store;
  key: CheckpointKey;
  logger: Logger;
  holder: string;
  intervalMs: number;
  registry?: Registry;
}

export class Checkpointer {
  readonly #o: CheckpointerOptions;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<unknown> | null = null;
  readonly #written: Counter | null;
  readonly #last: Gauge | null;

  constructor(opts: CheckpointerOptions) {
    this.#o = opts;
    const registers = opts.registry ? [opts.registry] : [];
    this.#written = opts.registry
      ? new Counter({ name: 'hoop_audit_checkpoints_total', help: 'Signed checkpoints written', registers })
      : null;
    this.#last = opts.registry
      ? new Gauge({
          name: 'hoop_audit_checkpoint_last_timestamp_seconds',
          help: 'When the latest checkpoint was written or found current',
          registers,
        })
      : null;
  }

  start(): void {
    this.#timer = setInterval(() => {
      if (this.#running) return;
      this.#running = this.checkpoint()
        .catch((err: unknown) => this.#o.logger.error({ err }, 'checkpoint failed'))
        .finally(() => (this.#running = null));
    }, this.#o.intervalMs);
    this.#timer.unref();
  }

  /** Write a checkpoint now if any head changed since the latest; returns it, or null (nothing new, or another replica's turn). */
  async checkpoint(now = new Date()): Promise<CheckpointRow | null> {
    const { store, key, holder } = this.#o;
    const lease = await store.claimExportLease(
      CHECKPOINT_LEASE,
      holder,
      now,
      new Date(now.getTime() + Math.max(30_000, this.#o.intervalMs * 2)),
      EXPORT_START,
    );
    if (!lease) return null;
    const prev = await store.latestCheckpoint();
    const [unsorted, pruned] = await Promise.all([
      store.listChainHeads(),
      store.listPrunedSince(prev?.at ?? new Date(0)),
    ]);
    // compare in code-unit order, as makeCheckpoint sorts (the database's collation may differ)
    const heads = [...unsorted].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (prev) {
      const before = JSON.parse(prev.body) as CheckpointBody;
      const same =
        pruned.length === 0 &&
        before.sessions.length === heads.length &&
        before.sessions.every(([id, seq, hash], i) => {
          const h = heads[i]!;
          return h.id === id && h.head_seq === seq && h.head_hash === hash;
        });
      if (same) {
        this.#last?.set(now.getTime() / 1000);
        return null;
      }
    }
    const cp = makeCheckpoint(prev, heads, pruned, now, key);
    if (!(await store.insertCheckpoint(cp))) return null; // another writer took this seq
    this.#written?.inc();
    this.#last?.set(now.getTime() / 1000);
    this.#o.logger.info(
      { checkpoint: cp.seq, sessions: heads.length, pruned: pruned.length },
      'checkpoint signed',
    );
    return cp;
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
    await this.#o.store
      .releaseExportLease(CHECKPOINT_LEASE, this.#o.holder, new Date())
      .catch(() => undefined);
  }
}
