// Config paths as users read them: `targets[0].password`, `policies[1].when.ref[0]`,
// `policies[0].when["weird key"]`. The root is the empty string.

export type ConfigPathSegment = string | number;

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** ['targets', 0, 'password'] -> "targets[0].password"; keys that are not plain words are quoted. */
export function formatConfigPath(segments: readonly ConfigPathSegment[]): string {
  let text = '';
  for (const segment of segments) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (PLAIN_KEY.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text;
}

/** The inverse of formatConfigPath; null when the text is not a path it could have produced. */
export function parseConfigPath(text: string): ConfigPathSegment[] | null {
  const segments: ConfigPathSegment[] = [];
  let rest = text;
  let first = true;
  while (rest.length > 0) {
    const word = (first ? /^([A-Za-z_][A-Za-z0-9_-]*)/ : /^\.([A-Za-z_][A-Za-z0-9_-]*)/).exec(rest);
    if (word?.[1] !== undefined) {
      segments.push(word[1]);
      rest = rest.slice(word[0].length);
    } else {
      const index = /^\[(\d+)\]/.exec(rest);
      if (index?.[1] !== undefined) {
        segments.push(Number(index[1]));
        rest = rest.slice(index[0].length);
      } else {
        const quoted = /^\[("(?:[^"\\]|\\.)*")\]/.exec(rest);
        if (quoted?.[1] === undefined) return null;
        segments.push(JSON.parse(quoted[1]) as string);
        rest = rest.slice(quoted[0].length);
      }
    }
    first = false;
  }
  return segments;
}
