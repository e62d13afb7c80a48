// The committed bundle: reproducible byte for byte, ESM that Node runs, no broker code inside, and
// action.yml pointing at it.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
// @ts-expect-error: a plain .mjs build script without type declarations
import { buildAction } from '../../scripts/build-action.mjs';
import { REPO_ROOT } from '../fixtures/actions-runner.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function buildInto(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-build-'));
  dirs.push(dir);
  await (buildAction as (out: string) => Promise<string[]>)(dir);
  return dir;
}

describe('dist/', () => {
  it('two builds are identical, and equal the committed dist/', async () => {
    const [a, b] = await Promise.all([buildInto(), buildInto()]);
    const files = readdirSync(a).sort();
    expect(files).toEqual(['licenses.txt', 'main.js', 'package.json', 'post.js']);
    expect(readdirSync(join(REPO_ROOT, 'dist')).sort()).toEqual(files);
    for (const f of files) {
      expect(readFileSync(join(b, f)).equals(readFileSync(join(a, f))), `${f} is reproducible`).toBe(true);
      expect(
        readFileSync(join(REPO_ROOT, 'dist', f)).equals(readFileSync(join(a, f))),
        `dist/${f} is current`,
      ).toBe(true);
    }
  });

  it('contains no broker code, no typebox, no absolute paths', () => {
    for (const f of ['main.js', 'post.js']) {
      const code = readFileSync(join(REPO_ROOT, 'dist', f), 'utf8');
      expect(code).not.toMatch(/node_modules\/typebox\//);
      expect(code).not.toMatch(/^\/\/ service\//m);
      expect(code).not.toContain(REPO_ROOT);
      expect(code.startsWith('// Built by scripts/build-action.mjs')).toBe(true);
    }
    expect(JSON.parse(readFileSync(join(REPO_ROOT, 'dist/package.json'), 'utf8'))).toEqual({
      type: 'module',
    });
  });

  it('action.yml runs it on node24 with an always-run post step', () => {
    const meta = parseYaml(readFileSync(join(REPO_ROOT, 'action.yml'), 'utf8'));
    expect(meta.runs).toEqual({
      using: 'node24',
      main: 'dist/main.js',
      post: 'dist/post.js',
      'post-if': 'always()',
    });
    expect(Object.keys(meta.inputs)).toEqual([
      'broker-url',
      'audience',
      'targets',
      'ttl',
      'github-token',
      'job-summary',
      'check-run',
      'fail-on-denied',
      'ca-cert',
    ]);
    expect(Object.keys(meta.outputs)).toEqual([
      'session-id',
      'expires-at',
      'database-url',
      'kubeconfig',
      'ssh-config',
    ]);
  });
});
