// Loads the broker's YAML configuration: parse (keeping node positions), validate against the
// TypeBox schema, refuse inline secrets, then cross-check references. Every problem is reported at
// once, each with its path and line/column; a config with any error is never returned.
import { readFile } from 'node:fs/promises';
import { Compile } from 'typebox/compile';
import {
  type Document,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  visit,
  type YAMLError,
} from 'yaml';
import { type ConfigError, fileReason, type Locate, sortConfigErrors } from './errors.js';
import { type ConfigPathSegment, formatConfigPath } from './path.js';
import { Config } from './schema.js';
import { type ConfigIssue, schemaIssues } from './schema-errors.js';
import { inlineSecretIssues, semanticIssues } from './semantic.js';
import { YamlSourceMap } from './source-map.js';

export {
  CONFIG_DEFAULTS,
  type ResolvedConfig,
  type ResolvedIssuer,
  type ResolvedListener,
  type ResolvedPolicy,
  type ResolvedPostgresListener,
  type ResolvedTarget,
  withDefaults,
} from './defaults.js';
export type { ConfigError, Locate, SourceLocation } from './errors.js';
export type { ConfigPathSegment } from './path.js';
export { formatConfigPath, parseConfigPath } from './path.js';

/** A valid config, with the name of its source and a way back from paths to lines. */
export interface LoadedConfig {
  ok: true;
  config: Config;
  /** the file name (or label) the text came from, as given */
  source: string;
  /** line/column of the value at a config path (`targets[0].password`) */
  locate: Locate;
}

export type ConfigResult = LoadedConfig | { ok: false; errors: ConfigError[] };

const validator = Compile(Config);

/** Parses and validates config text; `source` names it in results (a file path or a label). */
export function loadConfigText(text: string, source: string): ConfigResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const map = new YamlSourceMap(doc, lines);
  const place = (issue: ConfigIssue): ConfigError => ({
    path: formatConfigPath(issue.path),
    ...map.locateSegments(issue.path, issue.at),
    message: issue.message,
  });

  if (doc.errors.length > 0) {
    // Syntax errors cascade (one unclosed bracket yields several); the first is the one to fix.
    // Duplicate keys are independent of each other, so all of them are reported.
    const duplicates = doc.errors.filter((error) => error.code === 'DUPLICATE_KEY');
    const syntax = doc.errors
      .filter((error) => error.code !== 'DUPLICATE_KEY')
      .sort((a, b) => a.pos[0] - b.pos[0]);
    const reported = syntax[0] ? [...duplicates, syntax[0]] : duplicates;
    return { ok: false, errors: sortConfigErrors(reported.map((error) => yamlError(error, doc, lines))) };
  }
  const keyErrors = complexKeyErrors(doc, lines);
  if (keyErrors.length > 0) return { ok: false, errors: sortConfigErrors(keyErrors) };

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    // e.g. an alias bomb ("excessive alias count"); the message holds no config values.
    const reason = error instanceof Error ? error.message : String(error);
    return { ok: false, errors: [{ path: '', line: 1, column: 1, message: `invalid YAML: ${reason}` }] };
  }
  if (data === null || data === undefined) {
    return { ok: false, errors: [{ path: '', line: 1, column: 1, message: 'the configuration is empty' }] };
  }

  const issues = inlineSecretIssues(data);
  if (!validator.Check(data)) issues.push(...schemaIssues(Config, data, (value) => validator.Errors(value)));
  if (issues.length > 0) return { ok: false, errors: sortConfigErrors(issues.map(place)) };

  const config = data as Config;
  const semantic = semanticIssues(config, (path) => map.locateSegments(path).line);
  if (semantic.length > 0) return { ok: false, errors: sortConfigErrors(semantic.map(place)) };
  return { ok: true, config, source, locate: map.locate };
}

/** Reads and loads a config file; an unreadable file is reported as an error at line 0. */
export async function loadConfigFile(path: string): Promise<ConfigResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    return {
      ok: false,
      errors: [{ path: '', line: 0, column: 0, message: `cannot read the file: ${fileReason(error)}` }],
    };
  }
  return loadConfigText(text, path);
}

function yamlError(error: YAMLError, doc: Document, lines: LineCounter): ConfigError {
  const { line, col } = lines.linePos(error.pos[0]);
  if (error.code === 'DUPLICATE_KEY') {
    const found = keyAt(doc, error.pos[0]);
    const name = found ? String(found.key) : '';
    return {
      path: found ? formatConfigPath(found.path) : '',
      line,
      column: col,
      message: `duplicate key '${name}'`,
    };
  }
  if (error.code === 'MULTIPLE_DOCS') {
    return {
      path: '',
      line,
      column: col,
      message: 'invalid YAML: the file must hold exactly one YAML document',
    };
  }
  // Only the first line: yaml may append a source excerpt, which could show a neighbouring secret.
  const message = error.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? error.code;
  return { path: '', line, column: col, message: `invalid YAML: ${message}` };
}

/** Finds the mapping key whose text starts at `offset`, with its config path. */
function keyAt(doc: Document, offset: number): { key: unknown; path: ConfigPathSegment[] } | undefined {
  const walk = (
    node: unknown,
    path: ConfigPathSegment[],
  ): { key: unknown; path: ConfigPathSegment[] } | undefined => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? pair.key.value : pair.key;
        const keyPath = [...path, String(key)];
        if (isScalar(pair.key) && pair.key.range?.[0] === offset) return { key, path: keyPath };
        const inner = walk(pair.value, keyPath);
        if (inner) return inner;
      }
    } else if (isSeq(node)) {
      for (const [index, item] of node.items.entries()) {
        const inner = walk(item, [...path, index]);
        if (inner) return inner;
      }
    }
    return undefined;
  };
  return walk(doc.contents, []);
}

/** Mapping keys must be plain scalars (a `? [a, b]` key cannot name a config property). */
function complexKeyErrors(doc: Document, lines: LineCounter): ConfigError[] {
  const errors: ConfigError[] = [];
  visit(doc, {
    Pair(_, pair) {
      if (pair.key !== null && !isScalar(pair.key)) {
        const offset = (pair.key as { range?: [number, number, number] }).range?.[0] ?? 0;
        const { line, col } = lines.linePos(offset);
        errors.push({
          path: '',
          line,
          column: col,
          message: 'invalid YAML: mapping keys must be plain words',
        });
      }
    },
  });
  return errors;
}
