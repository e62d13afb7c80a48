// Maps config paths back to positions in the YAML text, from the parsed document's node ranges.
import { type Document, isAlias, isMap, isScalar, isSeq, type LineCounter, type Node } from 'yaml';
import type { SourceLocation } from './errors.js';
import { type ConfigPathSegment, parseConfigPath } from './path.js';

/** Where an error points: the value itself, the key that introduces it, or the mapping that should hold it. */
export type LocateMode = 'value' | 'key' | 'parent';

export class YamlSourceMap {
  readonly #doc: Document;
  readonly #lines: LineCounter;

  constructor(doc: Document, lines: LineCounter) {
    this.#doc = doc;
    this.#lines = lines;
  }

  /** Position of a dotted path (`targets[0].password`); unknown paths fall back to the deepest known ancestor. */
  locate = (path: string): SourceLocation => {
    const segments = parseConfigPath(path);
    return segments ? this.locateSegments(segments) : this.#position(0);
  };

  locateSegments(segments: readonly ConfigPathSegment[], mode: LocateMode = 'value'): SourceLocation {
    const walked = mode === 'parent' ? segments.slice(0, -1) : segments;
    let node: unknown = this.#doc.contents;
    let offset = rangeStart(node) ?? 0;
    let keyOffset: number | undefined;
    for (const segment of walked) {
      if (isAlias(node)) node = node.resolve(this.#doc);
      keyOffset = undefined;
      if (isMap(node)) {
        const pair = node.items.find(
          (item) => isScalar(item.key) && String(item.key.value) === String(segment),
        );
        if (!pair) break;
        keyOffset = rangeStart(pair.key);
        node = pair.value;
        // `key:` with nothing after it: the key is the only thing to point at.
        const valueOffset = isEmptyScalar(node) ? undefined : rangeStart(node);
        offset = valueOffset ?? keyOffset ?? offset;
      } else if (isSeq(node) && typeof segment === 'number') {
        node = node.items[segment];
        const itemOffset = rangeStart(node);
        if (itemOffset === undefined) break;
        offset = itemOffset;
      } else {
        break;
      }
    }
    if (mode === 'key' && keyOffset !== undefined) return this.#position(keyOffset);
    return this.#position(offset);
  }

  #position(offset: number): SourceLocation {
    const { line, col } = this.#lines.linePos(offset);
    return { line, column: col };
  }
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range;
  return Array.isArray(range) ? range[0] : undefined;
}

function isEmptyScalar(node: unknown): boolean {
  return isScalar(node) && node.value === null && (node.source === '' || node.range?.[0] === node.range?.[1]);
}
