// The text `hoop-broker check-config FILE` prints: one line per error, then a count.
import type { ConfigError } from './errors.js';

/**
 * `FILE:LINE:COL path: message` per error (`FILE: path: message` when the line is unknown, and no
 * `path: ` for errors about the whole document), then "N error(s) in FILE".
 */
export function formatConfigErrors(source: string, errors: readonly ConfigError[]): string {
  const lines = errors.map((error) => {
    const where = error.line > 0 ? `${source}:${error.line}:${error.column}` : source;
    const path = error.path === '' ? '' : `${error.path}: `;
    return `${where} ${path}${error.message}`;
  });
  const count = errors.length === 1 ? '1 error' : `${errors.length} errors`;
  lines.push(`${count} in ${source}`);
  return `${lines.join('\n')}\n`;
}
