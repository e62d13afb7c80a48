// Turns TypeBox validation errors into messages a platform engineer can act on: each says what was
// expected at which path. A failed union (SecretRef, MaskRule, DenyRule, Target, …) yields ONE
// message: either the errors of the branch the value evidently meant, or a description of the union.
import type { TSchema } from 'typebox';
import { Settings } from 'typebox/system';
import Value from 'typebox/value';
import type { ConfigPathSegment } from './path.js';
import { ApproveRule, ConditionValue, Config, DenyRule, MaskRule, Policy, SecretRef } from './schema.js';
import { CommandPattern, ForwardDestination, PinnedHostKey, SshEnvName } from './targets/ssh.js';
import type { LocateMode } from './source-map.js';

/** A problem found in the config data, before it is placed in the YAML source. */
export interface ConfigIssue {
  path: ConfigPathSegment[];
  at: LocateMode;
  message: string;
}

/** The subset of a TypeBox validation error this module reads. */
export interface RawValidationError {
  keyword: string;
  schemaPath: string;
  instancePath: string;
  params: object;
  message: string;
}

type JsonSchema = Readonly<Record<string, unknown>>;

export const INLINE_SECRET_MESSAGE = 'inline secret refused: use {env: NAME} or {file: PATH}';

// TypeBox stops collecting after `maxErrors` (default 8); a config should report everything at
// once. The file is operator-written, so a generous cap is safe.
const MAX_ERRORS = 10_000;

const SECRET_REF = SecretRef as unknown as JsonSchema;
/** SecretRef, also where Type.Optional copied it (the copy shares its `anyOf`). */
const isSecretRef = (schema: JsonSchema): boolean =>
  schema === SECRET_REF || schema.anyOf === SECRET_REF.anyOf;

const UNION_DESCRIPTIONS = new Map<unknown, string>([
  [SecretRef, '{env: NAME} or {file: PATH}'],
  [MaskRule, 'a mask rule: {column: "table.column"} or {detector: email|credit_card|api_key|iban}'],
  [ConditionValue, 'a string, number or boolean'],
  [DenyRule, 'a deny rule: {statement: [KIND, …]}, {table: [NAME, …]} or {function: [NAME, …]}'],
  [
    ApproveRule,
    'an approve rule: {statement: [KIND, …]}, {table: [NAME, …]} or {function: [NAME, …]}, with optional approvers: {users, teams, min} and timeout',
  ],
  [CommandPattern, 'a command pattern: "glob", "/regex/", {exact: …}, {glob: …} or {regex: …}'],
]);
{
  const storeUrl = child(
    child(child(child(Config as unknown as JsonSchema, 'properties'), 'store'), 'properties'),
    'url',
  );
  if (storeUrl) UNION_DESCRIPTIONS.set(storeUrl, 'a postgres:// URL or {env: NAME} or {file: PATH}');
  const when = child(child(Policy as unknown as JsonSchema, 'properties'), 'when');
  const conditions = child(when, 'patternProperties');
  for (const value of Object.values(conditions ?? {})) {
    UNION_DESCRIPTIONS.set(value, 'a string, number, boolean, or a list of them');
  }
}

const PATTERN_MESSAGES = new Map<string, string>([
  [
    '^[a-z0-9][a-z0-9_-]*$',
    'must use lowercase letters, digits, "-" and "_", starting with a letter or digit',
  ],
  [
    '^[A-Za-z_][A-Za-z0-9_]*$',
    'must be an environment variable name: letters, digits and "_", not starting with a digit',
  ],
  ['^([0-9]+h)?([0-9]+m)?([0-9]+s)?$', 'must be a duration like 90s, 15m, 1h or 1h30m'],
  ['^[A-Z][A-Z_ ]*$', 'must be an upper-case statement kind like DROP or TRUNCATE'],
  [
    (PinnedHostKey as unknown as { pattern: string }).pattern,
    'must be an OpenSSH public key, "ssh-ed25519 AAAA…" (as ssh-keyscan prints it, without the host name)',
  ],
  [
    (ForwardDestination as unknown as { pattern: string }).pattern,
    'must be host:port or [IPv6]:port; the host may be a glob, the port a number or *',
  ],
  [
    (SshEnvName as unknown as { pattern: string }).pattern,
    'must be an environment variable name or a glob of names, like LANG or LC_*',
  ],
]);

/** Every schema problem in `value`, unions collapsed; `errorsOf` defaults to TypeBox's Value.Errors. */
export function schemaIssues(
  schema: TSchema,
  value: unknown,
  errorsOf: (value: unknown) => readonly RawValidationError[] = (v) => collectErrors(schema as JsonSchema, v),
): ConfigIssue[] {
  const issues = withErrorCap(() => diagnose(schema as unknown as JsonSchema, value, [], errorsOf(value)));
  // TypeBox reports an extra key twice (`additionalProperties` and a failed `false` schema).
  const seen = new Set<string>();
  return issues.filter((issue) => {
    const key = JSON.stringify(issue);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function withErrorCap<T>(run: () => T): T {
  const previous = Settings.Get().maxErrors;
  Settings.Set({ maxErrors: MAX_ERRORS });
  try {
    return run();
  } finally {
    Settings.Set({ maxErrors: previous });
  }
}

function collectErrors(schema: JsonSchema, value: unknown): readonly RawValidationError[] {
  return Value.Errors(schema as unknown as TSchema, value);
}

function diagnose(
  schema: JsonSchema,
  value: unknown,
  base: ConfigPathSegment[],
  errors: readonly RawValidationError[] = collectErrors(schema, value),
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const error of errors) {
    const resolved = resolveSchemaPath(schema, error.schemaPath);
    // Errors inside a union's branches are summarised by the union's own `anyOf` error.
    if (resolved.throughUnion) continue;
    const instance = instanceSegments(value, error.instancePath);
    const path = [...base, ...instance];
    const at = valueAt(value, instance);
    if (error.keyword === 'anyOf' && resolved.schema) {
      issues.push(...diagnoseUnion(resolved.schema, at, path));
    } else {
      issues.push(...translate(error, resolved.schema, resolved.parent, at, path));
    }
  }
  return issues;
}

function diagnoseUnion(union: JsonSchema, value: unknown, path: ConfigPathSegment[]): ConfigIssue[] {
  const literals = literalValues(union);
  if (literals) return [{ path, at: 'value', message: oneOfMessage(literals, value) }];
  if (isSecretRef(union) && value === null) {
    return [{ path, at: 'value', message: 'missing secret reference: use {env: NAME} or {file: PATH}' }];
  }
  if (isSecretRef(union) && ['string', 'number', 'boolean'].includes(typeof value)) {
    return [{ path, at: 'value', message: INLINE_SECRET_MESSAGE }];
  }
  const branches = (union.anyOf as JsonSchema[] | undefined) ?? [];
  let candidates = branches.filter((branch) => accepts(branch, value));
  if (isPlainObject(value) && candidates.length > 1) {
    const discriminated = byDiscriminator(candidates, value, path);
    if (Array.isArray(discriminated)) candidates = discriminated;
    else return [discriminated];
    if (candidates.length > 1) {
      const byKeys = candidates.filter((branch) =>
        distinctKeys(branch, candidates).some((key) => key in value),
      );
      if (byKeys.length > 0) candidates = byKeys;
      else {
        const suggestion = unknownKeySuggestion(value, candidates, path);
        if (suggestion) return [suggestion];
      }
    }
  }
  const only = candidates.length === 1 ? candidates[0] : undefined;
  if (only) {
    const inner = diagnose(only, value, path);
    if (inner.length > 0) return inner;
  }
  const got = isPlainObject(value) ? '' : `, got ${describeValue(value)}`;
  return [{ path, at: 'value', message: `expected ${describe(union)}${got}` }];
}

/** Branches told apart by a literal property (like `kind`): pick by its value, or say it is wrong. */
function byDiscriminator(
  branches: JsonSchema[],
  value: Record<string, unknown>,
  path: ConfigPathSegment[],
): JsonSchema[] | ConfigIssue {
  const first = branches[0];
  const names = Object.keys(properties(first));
  const discriminator = names.find((name) =>
    branches.every((branch) => child(properties(branch), name)?.const !== undefined),
  );
  if (discriminator === undefined) return branches;
  const allowed = branches.map((branch) => child(properties(branch), discriminator)?.const);
  if (!(discriminator in value)) {
    return {
      path: [...path, discriminator],
      at: 'parent',
      message: `missing required property '${discriminator}' (one of: ${allowed.map(String).join(', ')})`,
    };
  }
  const chosen = branches.filter(
    (branch) => child(properties(branch), discriminator)?.const === value[discriminator],
  );
  if (chosen.length === 0) {
    return {
      path: [...path, discriminator],
      at: 'value',
      message: oneOfMessage(allowed, value[discriminator]),
    };
  }
  return chosen;
}

function unknownKeySuggestion(
  value: Record<string, unknown>,
  branches: JsonSchema[],
  path: ConfigPathSegment[],
): ConfigIssue | undefined {
  const known = [...new Set(branches.flatMap((branch) => Object.keys(properties(branch))))];
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const suggestion = closest(key, known);
    if (suggestion) {
      return {
        path: [...path, key],
        at: 'key',
        message: `unknown property '${key}' (did you mean '${suggestion}'?)`,
      };
    }
  }
  return undefined;
}

function translate(
  error: RawValidationError,
  schema: JsonSchema | undefined,
  parent: JsonSchema | undefined,
  value: unknown,
  path: ConfigPathSegment[],
): ConfigIssue[] {
  const params = error.params as Record<string, unknown>;
  const issue = (message: string): ConfigIssue[] => [{ path, at: 'value', message }];
  switch (error.keyword) {
    case 'boolean':
      // `additionalProperties: false` reports each extra key as a failed `false` schema.
      if (error.schemaPath.endsWith('/additionalProperties')) {
        const key = path[path.length - 1];
        return typeof key === 'string' ? [unknownProperty(path, key, parent)] : [];
      }
      return issue(error.message);
    case 'additionalProperties':
      return ((params.additionalProperties as string[] | undefined) ?? []).map((key) =>
        unknownProperty([...path, key], key, schema),
      );
    case 'required':
      return ((params.requiredProperties as string[] | undefined) ?? []).map((key) => ({
        path: [...path, key],
        at: 'parent' as const,
        message: `missing required property '${key}'`,
      }));
    case 'type':
      return issue(rangeMessage(schema) ?? `expected ${describe(schema)}, got ${describeValue(value)}`);
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return issue(rangeMessage(schema) ?? error.message);
    case 'minLength': {
      const limit = Number(params.limit);
      return issue(limit <= 1 ? 'must not be empty' : `must be at least ${limit} characters`);
    }
    case 'maxLength':
      return issue(`must be at most ${Number(params.limit)} characters`);
    case 'pattern': {
      const pattern = String(params.pattern);
      return issue(PATTERN_MESSAGES.get(pattern) ?? `must match the pattern ${pattern}`);
    }
    case 'minItems': {
      const limit = Number(params.limit);
      return issue(limit <= 1 ? 'must list at least one entry' : `must list at least ${limit} entries`);
    }
    case 'maxItems':
      return issue(`must list at most ${Number(params.limit)} entries`);
    case 'const':
      return issue(oneOfMessage([params.allowedValue], value));
    case 'enum':
      return issue(oneOfMessage((params.allowedValues as unknown[] | undefined) ?? [], value));
    default:
      return issue(error.message);
  }
}

function unknownProperty(
  path: ConfigPathSegment[],
  key: string,
  objectSchema: JsonSchema | undefined,
): ConfigIssue {
  const known = Object.keys(properties(objectSchema));
  const suggestion = closest(key, known);
  const hint = suggestion
    ? `did you mean '${suggestion}'?`
    : known.length > 0
      ? `allowed: ${known.join(', ')}`
      : 'no properties are allowed here';
  return { path, at: 'key', message: `unknown property '${key}' (${hint})` };
}

function oneOfMessage(allowed: readonly unknown[], value: unknown): string {
  const names = allowed.map(String);
  const base = names.length === 1 ? `must be ${names[0]}` : `expected one of: ${names.join(', ')}`;
  if (typeof value !== 'string' || names.length < 2) return base;
  // Symmetric and unsigned algorithms are refused on purpose; do not suggest a near-miss.
  if (names.includes('RS256') && /^(?:HS\d+|none)$/i.test(value))
    return `${base} (HMAC and "none" are never accepted)`;
  const suggestion = closest(value, names);
  return suggestion ? `${base} (did you mean '${suggestion}'?)` : base;
}

function rangeMessage(schema: JsonSchema | undefined): string | undefined {
  if (!schema || (schema.type !== 'integer' && schema.type !== 'number')) return undefined;
  const kind = schema.type === 'integer' ? 'an integer' : 'a number';
  const min = typeof schema.minimum === 'number' ? schema.minimum : undefined;
  const max = typeof schema.maximum === 'number' ? schema.maximum : undefined;
  if (min !== undefined && max !== undefined) return `must be ${kind} between ${min} and ${max}`;
  if (min !== undefined) return `must be ${kind} of at least ${min}`;
  if (max !== undefined) return `must be ${kind} of at most ${max}`;
  return undefined;
}

/** What a schema accepts, in words. */
function describe(schema: JsonSchema | undefined): string {
  if (!schema) return 'a valid value';
  const custom =
    UNION_DESCRIPTIONS.get(schema) ?? (isSecretRef(schema) ? UNION_DESCRIPTIONS.get(SecretRef) : undefined);
  if (custom) return custom;
  const literals = literalValues(schema);
  if (literals)
    return literals.length === 1 ? String(literals[0]) : `one of: ${literals.map(String).join(', ')}`;
  if (Array.isArray(schema.anyOf))
    return [...new Set((schema.anyOf as JsonSchema[]).map(describe))].join(' or ');
  switch (schema.type) {
    case 'string':
      return 'a string';
    case 'integer':
      return 'an integer';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'true or false';
    case 'array':
      return 'a list';
    case 'object':
      return 'a mapping';
    case 'null':
      return 'nothing';
    default:
      return 'a valid value';
  }
}

/** The kind of a value, without its content (it may be a secret pasted in the wrong place). */
function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  switch (typeof value) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'a boolean';
    case 'object':
      return 'a mapping';
    default:
      return typeof value;
  }
}

/** The allowed values when a schema is a literal or a union of literals only. */
function literalValues(schema: JsonSchema): unknown[] | undefined {
  if (schema.const !== undefined) return [schema.const];
  if (Array.isArray(schema.enum)) return schema.enum as unknown[];
  if (!Array.isArray(schema.anyOf)) return undefined;
  const values: unknown[] = [];
  for (const branch of schema.anyOf as JsonSchema[]) {
    const inner = literalValues(branch);
    if (!inner) return undefined;
    values.push(...inner);
  }
  return values;
}

/** Whether a value has the JSON type a schema asks for (not whether it is fully valid). */
function accepts(schema: JsonSchema, value: unknown): boolean {
  if (Array.isArray(schema.anyOf))
    return (schema.anyOf as JsonSchema[]).some((branch) => accepts(branch, value));
  if (schema.const !== undefined) return schema.const === value;
  switch (schema.type) {
    case 'object':
      return isPlainObject(value);
    case 'array':
      return Array.isArray(value);
    case 'string':
      return typeof value === 'string';
    case 'integer':
      return Number.isInteger(value);
    case 'number':
      return typeof value === 'number';
    case 'boolean':
      return typeof value === 'boolean';
    case 'null':
      return value === null;
    default:
      return true;
  }
}

function distinctKeys(branch: JsonSchema, all: JsonSchema[]): string[] {
  return Object.keys(properties(branch)).filter((key) => !all.every((other) => key in properties(other)));
}

function properties(schema: JsonSchema | undefined): Record<string, JsonSchema> {
  const props = schema?.properties;
  return isPlainObject(props) ? (props as Record<string, JsonSchema>) : {};
}

function child(schema: JsonSchema | undefined, key: string): JsonSchema | undefined {
  const value = schema?.[key];
  return isPlainObject(value) ? (value as JsonSchema) : undefined;
}

interface ResolvedSchemaPath {
  schema: JsonSchema | undefined;
  parent: JsonSchema | undefined;
  throughUnion: boolean;
}

/** Follows a TypeBox schemaPath (`#/properties/a/items/anyOf/0`) from `root`. */
function resolveSchemaPath(root: JsonSchema, schemaPath: string): ResolvedSchemaPath {
  const segments = schemaPath
    .replace(/^#\/?/, '')
    .split('/')
    .filter((segment) => segment !== '');
  let schema: JsonSchema | undefined = root;
  let parent: JsonSchema | undefined;
  let throughUnion = false;
  for (let i = 0; i < segments.length && schema; i++) {
    const segment = segments[i] as string;
    parent = schema;
    if (segment === 'properties') {
      schema = child(child(schema, 'properties'), segments[++i] ?? '');
    } else if (segment === 'patternProperties') {
      // Pattern keys may contain "/": match the longest key that the rest of the path starts with.
      const rest = segments.slice(i + 1).join('/');
      const patterns: Record<string, unknown> = child(schema, 'patternProperties') ?? {};
      const key = Object.keys(patterns)
        .filter((pattern) => rest === pattern || rest.startsWith(`${pattern}/`))
        .sort((a, b) => b.length - a.length)[0];
      if (key === undefined) return { schema: undefined, parent, throughUnion };
      schema = child(patterns, key);
      i += key.split('/').length;
    } else if (segment === 'anyOf' || segment === 'oneOf' || segment === 'allOf') {
      throughUnion = true;
      const branches = schema[segment];
      const index = Number(segments[++i]);
      schema = Array.isArray(branches) ? (branches[index] as JsonSchema | undefined) : undefined;
    } else {
      schema = child(schema, segment);
    }
  }
  return { schema, parent, throughUnion };
}

function instanceSegments(root: unknown, pointer: string): ConfigPathSegment[] {
  if (pointer === '') return [];
  const segments: ConfigPathSegment[] = [];
  let current = root;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(current) && /^\d+$/.test(key)) {
      segments.push(Number(key));
      current = current[Number(key)];
    } else {
      segments.push(key);
      current = isPlainObject(current) ? current[key] : undefined;
    }
  }
  return segments;
}

function valueAt(root: unknown, segments: readonly ConfigPathSegment[]): unknown {
  let current = root;
  for (const segment of segments) {
    if (Array.isArray(current) && typeof segment === 'number') current = current[segment];
    else if (isPlainObject(current)) current = current[String(segment)];
    else return undefined;
  }
  return current;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The closest candidate within a small edit distance (typos, case), for "did you mean" hints. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  const limit = Math.min(2, Math.ceil(word.length / 3));
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance && distance <= limit) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance with adjacent transpositions counted as one edit. */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array(rows * cols).fill(0);
  const at = (i: number, j: number): number => d[i * cols + j] ?? 0;
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        value = Math.min(value, at(i - 2, j - 2) + 1);
      d[i * cols + j] = value;
    }
  }
  return at(a.length, b.length);
}
