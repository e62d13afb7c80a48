// The layout docs/architecture.md promises, checked by reading the source: policy/ is pure (imports
// nothing from api/, gateways/, store/, sessions/, and nothing that does I/O), and a file under
// service/ over 600 lines says at its top why.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const service = join(root, 'service');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return tsFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Every module specifier of a file: static imports and re-exports, dynamic import(), require(). */
export function specifiers(text: string): string[] {
  const out: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\sfrom\s*['"]([^'"]+)['"]/g,
    /\bimport\s*['"]([^'"]+)['"]/g,
    /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
    /\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g,
  ];
  for (const re of patterns) for (const m of text.matchAll(re)) out.push(m[1]!);
  return out;
}

/** The code without comments and string/template contents (for looking for calls). */
function codeOnly(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:\\])\/\/.*$/gm, '$1')
    .replace(/'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|`(?:[^`\\]|\\.)*`/g, "''");
}

const FORBIDDEN_LAYERS = ['api', 'gateways', 'store', 'sessions'];
const IO_MODULES =
  /^(node:)?(fs|fs\/promises|net|http|https|http2|dgram|tls|child_process|worker_threads|dns)$|^undici$|^pg$|^ssh2$|^ws$/;

describe('architecture', () => {
  const policy = tsFiles(join(service, 'policy'));

  it('finds the policy sources', () => {
    expect(policy.length).toBeGreaterThan(20);
    expect(specifiers("import { a } from '../x.js';\nimport type {\n b,\n} from 'node:fs';")).toEqual([
      '../x.js',
      'node:fs',
    ]);
  });

  it('policy/ imports nothing from api/, gateways/, store/, sessions/', () => {
    const bad: string[] = [];
    for (const file of policy) {
      for (const spec of specifiers(readFileSync(file, 'utf8'))) {
        if (!spec.startsWith('.')) continue;
        const target = relative(service, resolve(dirname(file), spec));
        const top = target.split(/[\\/]/)[0]!;
        if (target.startsWith('..') || FORBIDDEN_LAYERS.includes(top))
          bad.push(`${relative(root, file)} imports ${spec}`);
      }
    }
    expect(bad).toEqual([]);
  });

  it('policy/ does no I/O: no fs, net, http(s), tls, child processes, undici, drivers, fetch', () => {
    const bad: string[] = [];
    for (const file of policy) {
      const text = readFileSync(file, 'utf8');
      for (const spec of specifiers(text))
        if (IO_MODULES.test(spec)) bad.push(`${relative(root, file)} imports ${spec}`);
      if (/\bfetch\s*\(|\bXMLHttpRequest\b|\bWebSocket\b/.test(codeOnly(text)))
        bad.push(`${relative(root, file)} calls fetch or opens a socket`);
    }
    expect(bad).toEqual([]);
  });

  it('every file under service/ over 600 lines begins with a comment saying why', () => {
    const bad: string[] = [];
    for (const file of tsFiles(service)) {
      const lines = readFileSync(file, 'utf8').split('\n');
      if (lines.length <= 600) continue;
      const head: string[] = [];
      for (const line of lines) {
        if (line.startsWith('#!') || line.startsWith('//')) head.push(line);
        else break;
      }
      const opening = head.join('\n');
      // the reason is stated in the opening comment: it speaks of the file's size or length
      if (!/\b(size|lines|longer|long)\b/i.test(opening))
        bad.push(
          `${relative(root, file)} (${lines.length} lines) does not say at its top why it is this long`,
        );
    }
    expect(bad).toEqual([]);
  });
});
