// The shape of every configuration error: where (path and 1-based line/column in the YAML) and what.

/** A 1-based position in the YAML source; line 0 means "unknown" (no source map was available). */
export interface SourceLocation {
  line: number;
  column: number;
}

/**
 * One problem in a configuration file.
 * `path` is the dotted form `targets[0].password` (keys that are not plain words are quoted:
 * `policies[0].when["a.b"]`); the empty string is the document root. For a missing property the
 * path names the missing property and line/column point at the mapping that should hold it.
 */
export interface ConfigError {
  path: string;
  line: number;
  column: number;
  message: string;
}

/** Maps a config path (as in ConfigError.path) to where its value is written in the source. */
export type Locate = (path: string) => SourceLocation;

/** Sorted by line, then column, then path; exact duplicates removed. */
export function sortConfigErrors(errors: readonly ConfigError[]): ConfigError[] {
  const seen = new Set<string>();
  const unique: ConfigError[] = [];
  for (const error of errors) {
    const key = `${error.line}:${error.column}:${error.path}:${error.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push(error);
  }
  return unique.sort(
    (a, b) => a.line - b.line || a.column - b.column || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0),
  );
}

/** A short reason for a failed file read (no paths or contents). */
export function fileReason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory, not a file';
    default:
      return code ?? (error instanceof Error ? error.message : String(error));
  }
}
