// Bundles the action: src/main.ts -> dist/main.js, src/post.ts -> dist/post.js (ESM, node20 syntax so it
// runs on Node 20 here and node24 on GitHub). The output is deterministic: no timestamps, no absolute
// paths, no sourcemaps; bundled packages' licenses go to one sorted file instead of inline comments.
// `node scripts/build-action.mjs` writes dist/; scripts/check-dist.mjs builds into a temp dir to compare.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// Some bundled dependencies are CommonJS and call require() for node builtins; ESM has no require.
const banner = [
  '// Built by scripts/build-action.mjs from src/; do not edit. Licenses: dist/licenses.txt',
  "import { createRequire as __hoopCreateRequire } from 'node:module';",
  'const require = __hoopCreateRequire(import.meta.url);',
].join('\n');

/** Broker code must never reach the bundle (only types cross from service/api). */
const forbiddenInputs = [
  /^service\//,
  /node_modules\/typebox\//,
  /node_modules\/fastify/,
  /node_modules\/pino/,
];

function packageDirOf(input) {
  const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
  return m ? m[1] : null;
}

function licenseText(pkgDir) {
  const dir = join(root, pkgDir);
  const file = readdirSync(dir)
    .filter((f) => /^(licen[sc]e|copying)(\.|$)/i.test(f))
    .sort()[0];
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const text = file
    ? readFileSync(join(dir, file), 'utf8').trim()
    : `(no license file; package.json says ${pkg.license ?? 'nothing'})`;
  return { name: pkg.name, version: pkg.version, license: pkg.license ?? 'unknown', text };
}

/** Build both entry points into `outDir`; returns the output file names. */
export async function buildAction(outDir = join(root, 'dist')) {
  mkdirSync(outDir, { recursive: true });
  const packages = new Map();
  for (const entry of ['main', 'post']) {
    const result = await build({
      absWorkingDir: root,
      entryPoints: [`src/${entry}.ts`],
      outfile: join(outDir, `${entry}.js`),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      banner: { js: banner },
      legalComments: 'none',
      sourcemap: false,
      metafile: true,
      charset: 'utf8',
      logLevel: 'warning',
    });
    for (const input of Object.keys(result.metafile.inputs)) {
      if (forbiddenInputs.some((re) => re.test(input)))
        throw new Error(`${entry}: bundle includes ${input} (broker code or typebox)`);
      const pkgDir = packageDirOf(input);
      if (pkgDir) packages.set(pkgDir, licenseText(pkgDir));
    }
  }
  const licenses = [...packages.values()]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .filter((p, i, all) => i === 0 || all[i - 1].name !== p.name || all[i - 1].version !== p.version)
    .map((p) => `${p.name}@${p.version} (${p.license})\n\n${p.text}\n`)
    .join(`\n${'-'.repeat(72)}\n\n`);
  writeFileSync(
    join(outDir, 'licenses.txt'),
    `Third-party code bundled into dist/main.js and dist/post.js\n\n${licenses}`,
  );
  // dist/ runs as ESM even when copied without the repository's package.json.
  writeFileSync(join(outDir, 'package.json'), '{ "type": "module" }\n');
  return ['licenses.txt', 'main.js', 'package.json', 'post.js'];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = join(root, 'dist');
  for (const f of readdirSync(out)) if (/\.(js|txt|json|map)$/.test(f)) rmSync(join(out, f));
  const files = await buildAction(out);
  for (const f of files) console.log(`dist/${f} ${readFileSync(join(out, f)).length} bytes`);
}
