// The README lists every config key and every CLI command and option: each property name anywhere in
// the config schema (service/config/schema.ts, targets of every kind) and each option of
// service/cli.ts must appear inside a `code span` of the README.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Config } from '../../service/config/schema.js';

const README = readFileSync('README.md', 'utf8');
/** every word inside the README's code blocks and code spans */
const FENCED = [...README.matchAll(/```[a-z]*\n([\s\S]*?)```/g)].map((m) => m[1]!);
const SPANS = [...README.replace(/```[a-z]*\n[\s\S]*?```/g, '').matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
const CODE_WORDS = new Set([...FENCED, ...SPANS].flatMap((t) => t.split(/[^A-Za-z0-9_-]+/).filter(Boolean)));

type Schema = {
  properties?: Record<string, Schema>;
  anyOf?: Schema[];
  items?: Schema;
  patternProperties?: Record<string, Schema>;
};

function keys(s: Schema, path: string, out: Map<string, string>): void {
  for (const [k, v] of Object.entries(s.properties ?? {})) {
    if (!out.has(k)) out.set(k, `${path}${k}`);
    keys(v, `${path}${k}.`, out);
  }
  for (const v of s.anyOf ?? []) keys(v, path, out);
  if (s.items) keys(s.items, `${path}[].`, out);
  for (const v of Object.values(s.patternProperties ?? {})) keys(v, `${path}*.`, out);
}

describe('README', () => {
  it('names every config key', () => {
    const all = new Map<string, string>();
    keys(Config as unknown as Schema, '', all);
    expect(all.size).toBeGreaterThan(50);
    const missing = [...all].filter(([k]) => !CODE_WORDS.has(k)).map(([, p]) => p);
    expect(missing).toEqual([]);
  });

  it('names every CLI option', () => {
    const cli = readFileSync('service/cli.ts', 'utf8');
    const block = /const OPTIONS = \{([\s\S]*?)\} as const;/.exec(cli)![1]!;
    const options = [...block.matchAll(/^\s+'?([a-z-]+)'?: \{/gm)].map((m) => m[1]!);
    expect(options.length).toBeGreaterThan(10);
    const missing = options.filter((o) => !README.includes(`--${o}`));
    expect(missing).toEqual([]);
  });
});
