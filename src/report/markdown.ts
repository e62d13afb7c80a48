// Markdown for text we do not control. Statements, reasons and claim values are attacker-influenced: a
// statement could carry `|` (breaks a table), `<script>`, backticks, `@mentions`, `#123` references or
// links. Everything but letters, digits, spaces and a few inert characters becomes a numeric HTML
// entity, which GitHub renders as the literal character and never as markup. `:` is escaped and so is
// the dot of `www.`, so `https://x` and `www.x` in a statement never become links.

const INERT_ASCII = /[A-Za-z0-9 ,;=%'"+\-/]/;
// Control and format characters (newlines, tabs, bidi overrides, zero-width joiners), lone surrogates,
// private-use and unassigned code points: shown as U+FFFD so nothing can reorder or hide text.
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\u2028\u2029]/u;

/** Shorten to `maxChars` code points (with an ellipsis when cut). Whitespace runs become one space. */
export function truncateText(text: string, maxChars: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  const chars = Array.from(flat);
  if (chars.length <= maxChars) return flat;
  return `${chars.slice(0, Math.max(0, maxChars - 1)).join('')}…`;
}

/** Escape untrusted text for Markdown and HTML, including inside a table cell. */
export function escapeText(text: string): string {
  let out = '';
  let recent = '';
  for (const ch of text.replace(/\s+/g, ' ')) {
    const code = ch.codePointAt(0) ?? 0;
    if (INVISIBLE.test(ch)) out += '\uFFFD';
    else if (code >= 0x80) out += ch;
    // `www.` starts an autolink; other dots stay readable (schema.table, kinds like pg.statement).
    else if (ch === '.') out += /www$/i.test(recent) ? '&#46;' : '.';
    else out += INERT_ASCII.test(ch) ? ch : `&#${code};`;
    recent = (recent + ch).slice(-3);
  }
  return out;
}

/** Untrusted text, truncated then escaped. */
export function cell(text: string, maxChars = 200): string {
  return escapeText(truncateText(text, maxChars));
}

/** Untrusted text as inline code: escaped (so backticks cannot close it) inside <code>. */
export function code(text: string, maxChars = 200): string {
  const escaped = cell(text, maxChars);
  return escaped === '' ? '' : `<code>${escaped}</code>`;
}

/** An ISO time as written by the broker, normalised; anything else is escaped text. */
export function isoTime(value: string): string {
  const d = new Date(value);
  return /^\d{4}-\d\d-\d\dT/.test(value) && !Number.isNaN(d.getTime()) ? d.toISOString() : cell(value, 40);
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map((c) => (c === '' ? ' ' : c)).join(' | ')} |`;
  return [line(header), `|${header.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${formatCount(n)} ${n === 1 ? one : many}`;
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return '';
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}
