// COPY's options and its inner query's text, as the parser and scanner give them.
import { str, typed } from './parse-tree.js';
import { scanTokens } from './parser.js';
import type { CopyInfo } from './types.js';

export function copyOptions(
  options: unknown,
): Pick<CopyInfo, 'format' | 'delimiter' | 'null' | 'quote' | 'escape' | 'header'> {
  let format: CopyInfo['format'] = 'text';
  const given: Record<string, string | undefined> = {};
  if (Array.isArray(options)) {
    for (const opt of options) {
      const t = typed(opt);
      if (t?.[0] !== 'DefElem') continue;
      const name = str(t[1].defname) ?? '';
      const arg = typed(t[1].arg);
      let value: string | undefined;
      if (arg?.[0] === 'String') value = str(arg[1].sval);
      else if (arg?.[0] === 'Boolean') value = arg[1].boolval ? 'true' : 'false';
      else if (arg?.[0] === 'Integer') value = String(arg[1].ival ?? 0);
      else if (t[1].arg === undefined) value = 'true';
      given[name] = value;
    }
  }
  if (given.format === 'csv' || given.format === 'binary') format = given.format;
  const csv = format === 'csv';
  const quote = given.quote ?? '"';
  const header = given.header !== undefined && !['false', 'off', '0'].includes(given.header.toLowerCase());
  return {
    format,
    delimiter: given.delimiter ?? (csv ? ',' : '\t'),
    null: given.null ?? (csv ? '' : '\\N'),
    quote,
    escape: given.escape ?? quote,
    header,
  };
}

/** The text between the parentheses of `COPY ( … ) TO`, found with the scanner's token positions. */
export function copyQueryText(source: string): string | undefined {
  const tokens = scanTokens(source);
  if (!tokens || tokens.length < 3 || tokens[1]?.text !== '(') return undefined;
  let depth = 0;
  for (let i = 1; i < tokens.length; i++) {
    const tok = tokens[i]!;
    if (tok.text === '(') depth++;
    else if (tok.text === ')') {
      depth--;
      if (depth === 0) {
        const buf = Buffer.from(source, 'utf8');
        return buf.subarray(tokens[1]!.end, tok.start).toString('utf8').trim();
      }
    }
  }
  return undefined;
}
