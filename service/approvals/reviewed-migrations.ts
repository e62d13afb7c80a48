// PR-gated migrations: an Approver decorator. A grant's `migrations: {paths}` names the repository's
// migration files; they are read at the session token's `sha` (contents API, as the App's installation)
// and parsed with the real parser. A held `pg.statement` whose parse tree equals a statement of those
// files is approved at once (no human asked; the reason names the file and statement number); every
// other hold goes to the inner Approver (the approvals service: a human, or a denial).
//
// Equality is on the parse tree with source positions removed: whitespace, comments and keyword case do
// not matter, every identifier and every constant does. (libpg-query's `fingerprint` is not used for this:
// it deliberately ignores constant values, so `UPDATE users SET role = 'admin' WHERE id = 1` would match a
// reviewed `… WHERE id = 2`.) A statement with parameters ($1) never matches: its values are not in the
// reviewed text. Files are fetched once per repository, commit and paths (cached), when the session opens
// (preload, called by the session-open gates: a failed fetch refuses the session); should a later read
// fail (the cache was full), it matches nothing (fail closed: the hold goes to a human). Only up parts count:
// dbmate's and node-pg-migrate's down sections and golang-migrate's *.down.sql files are not reviewed.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Grant } from '../config/schema.js';
import type { ApprovalOutcome, Approver, HoldRequest } from '../gateways/operation-flow.js';
import { parseStatements, type ParseNode } from '../policy/sql/parser.js';
import type { GitHubClient } from './github/client.js';

export const GET_CONTENTS = 'GET /repos/{owner}/{repo}/contents/{path}';
/** the migrations of one commit kept in memory at most */
const CACHE_ENTRIES = 64;
/** files larger than this are not read (GitHub's contents API inlines files up to 1 MB) */
const MAX_FILE_BYTES = 1024 * 1024;
const MAX_FILES = 500;

export interface ReviewedStatement {
  file: string;
  /** 1-based, in file order */
  number: number;
  key: string;
}

export interface ReviewedSet {
  sha: string;
  statements: Map<string, ReviewedStatement>;
  /** files that were skipped, and why (shown in the log) */
  skipped: string[];
}

/** Drop every source position: what remains is what the statement means. */
function withoutPositions(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutPositions);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(node).sort()) {
    if (k === 'location' || k === 'stmt_location' || k === 'stmt_len') continue;
    out[k] = withoutPositions((node as Record<string, unknown>)[k]);
  }
  return out;
}

function hasParamRef(node: unknown): boolean {
  if (Array.isArray(node)) return node.some(hasParamRef);
  if (node === null || typeof node !== 'object') return false;
  if ('ParamRef' in node) return true;
  return Object.values(node).some(hasParamRef);
}

const treeKey = (stmt: ParseNode): string =>
  createHash('sha256')
    .update(JSON.stringify(withoutPositions(stmt)))
    .digest('hex');

/** The key of each statement in a SQL text; null when it does not parse. */
export function statementKeys(sql: string): string[] | null {
  const parsed = parseStatements(sql);
  if (!parsed.ok) return null;
  return parsed.statements.map((s) => treeKey(s.stmt));
}

/** The key of one statement as a client sent it; null when it is not exactly one parameterless statement. */
export function heldStatementKey(source: string): string | null {
  const parsed = parseStatements(source);
  if (!parsed.ok || parsed.statements.length !== 1) return null;
  const stmt = parsed.statements[0]!.stmt;
  return hasParamRef(stmt) ? null : treeKey(stmt);
}

/** `*` and `?` in a file name, nothing else special. */
export function globMatches(glob: string, name: string): boolean {
  const re = new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '[^/]')}$`,
  );
  return re.test(name);
}

interface ContentEntry {
  type?: string;
  name?: string;
  path?: string;
  size?: number;
  content?: string;
  encoding?: string;
}

/** Read and parse the migration files at `sha`. */
export async function loadReviewedMigrations(
  client: GitHubClient,
  repository: string,
  sha: string,
  paths: readonly string[],
): Promise<ReviewedSet> {
  const statements = new Map<string, ReviewedStatement>();
  const skipped: string[] = [];
  const files: string[] = [];
  for (const pattern of paths) {
    const slash = pattern.lastIndexOf('/');
    const dir = slash === -1 ? '' : pattern.slice(0, slash);
    const glob = pattern.slice(slash + 1);
    if (!/[*?]/.test(glob)) {
      files.push(pattern);
      continue;
    }
    const listing = await client.request<ContentEntry[] | ContentEntry>(repository, GET_CONTENTS, {
      path: dir,
      ref: sha,
    });
    if (!Array.isArray(listing)) throw new Error(`${dir} is not a directory at ${sha}`);
    for (const e of listing)
      if (e.type === 'file' && e.name && e.path && globMatches(glob, e.name)) files.push(e.path);
  }
  // migration tools run files in name order: so are the statements numbered
  const ordered = [...new Set(files)].sort().slice(0, MAX_FILES);
  for (const path of ordered) {
    const file = await client.request<ContentEntry>(repository, GET_CONTENTS, { path, ref: sha });
    if (file.type !== 'file' || file.encoding !== 'base64' || typeof file.content !== 'string') {
      skipped.push(`${path}: not a file the contents API inlines`);
      continue;
    }
    const text = Buffer.from(file.content, 'base64');
    if (text.length > MAX_FILE_BYTES) {
      skipped.push(`${path}: larger than 1 MB`);
      continue;
    }
    if (/\.down\.sql$/i.test(path)) {
      skipped.push(`${path}: a down migration`);
      continue;
    }
    const keys = statementKeys(upSection(text.toString('utf8')));
    if (!keys) {
      skipped.push(`${path}: does not parse as SQL`);
      continue;
    }
    keys.forEach((key, i) => {
      if (!statements.has(key)) statements.set(key, { file: path, number: i + 1, key });
    });
  }
  return { sha, statements, skipped };
}

/** "matches statement 2 of a.sql", "matches statements 1, 2, 3 of a.sql" (several files: each named) */
function describeMatch(found: readonly ReviewedStatement[]): string {
  const byFile = new Map<string, number[]>();
  for (const f of found) byFile.set(f.file, [...(byFile.get(f.file) ?? []), f.number]);
  const parts = [...byFile].map(
    ([file, n]) => `statement${n.length > 1 ? 's' : ''} ${n.join(', ')} of ${file}`,
  );
  return `matches ${parts.join('; ')}`;
}

/**
 * The part of a migration file a tool runs going up. Down sections are not reviewed up statements:
 * dbmate's `-- migrate:up` / `-- migrate:down` and node-pg-migrate's `-- Up Migration` / `-- Down
 * Migration` markers cut the file; a file with neither is all up (golang-migrate's `*.down.sql` files
 * are skipped by name).
 */
export function upSection(text: string): string {
  const marker = /^[ \t]*--[ \t]*(?:migrate:(up|down)\b|[\s-]*(up|down)\s+migration\b).*$/gim;
  const marks = [...text.matchAll(marker)];
  if (marks.length === 0) return text;
  let out = '';
  marks.forEach((m, i) => {
    const dir = (m[1] ?? m[2] ?? '').toLowerCase();
    const end = marks[i + 1]?.index ?? text.length;
    if (dir === 'up') out += text.slice(m.index! + m[0].length, end);
  });
  return out;
}

export interface ReviewedMigrationsOptions {
  inner: Approver;
  client: GitHubClient;
  /** the session's grants and verified identity (the store's session record) */
  session(id: string): Promise<{ grants: Grant[]; identity: Record<string, unknown> } | null>;
  logger: Logger;
}

export class ReviewedMigrations implements Approver {
  readonly #o: ReviewedMigrationsOptions;
  readonly #cache = new Map<string, Promise<ReviewedSet>>();

  constructor(options: ReviewedMigrationsOptions) {
    this.#o = options;
  }

  /**
   * Read (and cache) the grants' migration files for a session about to open. Throws when they cannot
   * be read: the session is refused (fail closed); files skipped (too large, not SQL) are named.
   */
  async preload(
    grants: readonly Grant[],
    identity: Record<string, unknown>,
  ): Promise<{ evidence: string[] }> {
    const evidence: string[] = [];
    for (const grant of grants) {
      if (!grant.migrations) continue;
      const { repository, sha } = identity;
      if (typeof repository !== 'string' || typeof sha !== 'string' || !/^[0-9a-f]{40,64}$/.test(sha))
        throw new Error(
          `grant ${grant.target}: the token names no repository and commit sha to read migrations at`,
        );
      let set: ReviewedSet;
      try {
        set = await this.#reviewed(repository, sha, grant.migrations.paths);
      } catch (err) {
        throw new Error(
          `grant ${grant.target}: the migration files (${grant.migrations.paths.join(', ')}) could not be read at ${sha.slice(0, 12)}: ${(err as Error).message}`,
          { cause: err },
        );
      }
      evidence.push(
        `grant ${grant.target}: ${set.statements.size} reviewed statement(s) read at ${sha.slice(0, 12)} from ${grant.migrations.paths.join(', ')}${set.skipped.length ? `; skipped: ${set.skipped.join('; ')}` : ''}`,
      );
    }
    return { evidence };
  }

  async request(hold: HoldRequest): Promise<ApprovalOutcome> {
    const matched = await this.#match(hold).catch((err: unknown) => {
      this.#o.logger.warn(
        { session_id: hold.session_id, target: hold.target, err: (err as Error).message },
        'reviewed migrations could not be read; the hold goes to the approvers',
      );
      return null;
    });
    if (matched)
      return {
        decision: 'approve',
        by: 'reviewed-migration',
        reason: `${describeMatch(matched.statements)} at ${matched.sha.slice(0, 12)} (reviewed migration)`,
      };
    return this.#o.inner.request(hold);
  }

  async #match(hold: HoldRequest): Promise<{ statements: ReviewedStatement[]; sha: string } | null> {
    const op = hold.operation;
    if (op.kind !== 'pg.statement' || !op.statement) return null;
    const session = await this.#o.session(hold.session_id);
    const grant = session?.grants.find((g) => g.target === hold.target && g.migrations);
    if (!session || !grant?.migrations) return null;
    const repository = session.identity.repository;
    const sha = session.identity.sha;
    if (typeof repository !== 'string' || typeof sha !== 'string' || !/^[0-9a-f]{40,64}$/.test(sha))
      return null;
    // an approval releases the whole message: each of its statements must be a reviewed one
    const sources = hold.statement_sources?.length ? hold.statement_sources : [op.statement.source];
    const keys = sources.map(heldStatementKey);
    if (keys.some((k) => k === null)) return null;
    const set = await this.#reviewed(repository, sha, grant.migrations.paths);
    const found = keys.map((k) => set.statements.get(k!));
    if (found.some((f) => f === undefined)) return null;
    return { statements: found as ReviewedStatement[], sha };
  }

  #reviewed(repository: string, sha: string, paths: readonly string[]): Promise<ReviewedSet> {
    const cacheKey = `${repository.toLowerCase()}@${sha}:${JSON.stringify(paths)}`;
    let set = this.#cache.get(cacheKey);
    if (!set) {
      set = loadReviewedMigrations(this.#o.client, repository, sha, paths).then((s) => {
        if (s.skipped.length)
          this.#o.logger.warn({ repository, sha, skipped: s.skipped }, 'migration files skipped');
        return s;
      });
      set.catch(() => this.#cache.delete(cacheKey));
      this.#cache.set(cacheKey, set);
      if (this.#cache.size > CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value!);
    }
    return set;
  }
}
