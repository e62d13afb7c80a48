// Names in policy rules ("schema.table.column", "table", "customers.\"Name\"") read the way
// PostgreSQL reads identifiers: unquoted parts are folded to lower case (ASCII letters, as PostgreSQL
// does under UTF8), quoted parts are taken as written ("" is a quote), parts are joined by '.'.

export type ParsedName = { ok: true; parts: string[] } | { ok: false; error: string };

const UNQUOTED_START = /[A-Za-z_\u0080-\uffff]/;
const UNQUOTED_REST = /[A-Za-z0-9_$\u0080-\uffff]/;

export function parseQualifiedName(text: string): ParsedName {
  const parts: string[] = [];
  let i = 0;
  for (;;) {
    if (i >= text.length)
      return { ok: false, error: `a name is missing after '.' in ${JSON.stringify(text)}` };
    if (text[i] === '"') {
      let part = '';
      let j = i + 1;
      for (;;) {
        if (j >= text.length)
          return { ok: false, error: `unterminated quoted identifier in ${JSON.stringify(text)}` };
        if (text[j] === '"') {
          if (text[j + 1] === '"') {
            part += '"';
            j += 2;
            continue;
          }
          break;
        }
        part += text[j];
        j++;
      }
      if (part === '') return { ok: false, error: `empty quoted identifier in ${JSON.stringify(text)}` };
      parts.push(part);
      i = j + 1;
    } else {
      if (!UNQUOTED_START.test(text[i]!))
        return {
          ok: false,
          error: `${JSON.stringify(text)}: an identifier cannot start with ${JSON.stringify(text[i])} (quote it: "…")`,
        };
      let j = i + 1;
      while (j < text.length && UNQUOTED_REST.test(text[j]!)) j++;
      parts.push(text.slice(i, j).replace(/[A-Z]/g, (c) => c.toLowerCase()));
      i = j;
    }
    if (i === text.length) return { ok: true, parts };
    if (text[i] !== '.')
      return {
        ok: false,
        error: `${JSON.stringify(text)}: unexpected ${JSON.stringify(text[i])} after an identifier (quote names with spaces or symbols)`,
      };
    i++;
  }
}
