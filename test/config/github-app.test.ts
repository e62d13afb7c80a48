// github_app's App keys and the grant keys that need them (require:, migrations:): errors name path and line.
import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../service/config/load.js';

const config = (app: string, grant: string, kind = 'postgres') => `
listen: { http: { port: 8080 } }
issuers:
  - { name: github, issuer: https://token.actions.githubusercontent.com, audience: https://hoop.test }
targets:
  - { name: db, kind: ${kind}, host: db.internal, database: d, user: u, password: { env: PW } }
policies:
  - name: p
    when: { repository_id: "1" }
    grants:
      - target: db
${grant}
${app}
`;
const APP = `github_app:
  app_id: 42
  private_key: { file: /run/secrets/app.pem }
  webhook_secret: { env: WH }`;
const WRITE = `        access: write
        require: { pull_request_reviews: { min: 2, teams: [octo-org/dba] }, environment_approval: true }
        migrations: { paths: ["db/migrations/*.sql"] }`;

function errors(text: string): { path: string; line: number; message: string }[] {
  const r = loadConfigText(text, 'hoop.yaml');
  return r.ok ? [] : r.errors;
}

describe('github_app and require:/migrations:', () => {
  it('accepts the App keys with gates and migrations on a write grant', () => {
    const r = loadConfigText(config(APP, WRITE), 'hoop.yaml');
    expect(r.ok, JSON.stringify(r.ok ? null : r.errors)).toBe(true);
  });

  it('refuses require:/migrations: without the App key, naming the grant path', () => {
    const e = errors(config('github_app: { webhook_secret: { env: WH } }', WRITE));
    expect(e.map((x) => x.path)).toEqual(
      expect.arrayContaining(['policies[0].grants[0].require', 'policies[0].grants[0].migrations']),
    );
    expect(e[0]!.message).toContain('needs github_app with app_id and private_key');
    expect(e[0]!.line).toBeGreaterThan(0);
  });

  it('refuses app_id without private_key, migrations on a read grant, an empty require, a glob in a directory', () => {
    expect(
      errors(config('github_app: { app_id: 1, webhook_secret: { env: WH } }', '        access: read')).map(
        (x) => x.message,
      ),
    ).toContain('app_id and private_key go together (both, or neither for webhooks only)');
    const read = errors(config(APP, '        access: read\n        migrations: { paths: ["m/*.sql"] }'));
    expect(read.map((x) => x.message)).toContain('migrations need a write grant (access: write or admin)');
    const empty = errors(config(APP, '        access: write\n        require: {}'));
    expect(empty.map((x) => x.message)).toContain(
      'must name environment_approval and/or pull_request_reviews',
    );
    const glob = errors(config(APP, '        access: write\n        migrations: { paths: ["db/*/x.sql"] }'));
    expect(glob.map((x) => x.path)).toContain('policies[0].grants[0].migrations.paths[0]');
  });

  it('api_url must be https (http only on loopback)', () => {
    const bad = errors(config(`${APP}\n  api_url: http://github.example.com/api/v3`, '        access: read'));
    expect(bad.map((x) => x.path)).toContain('github_app.api_url');
    expect(errors(config(`${APP}\n  api_url: http://127.0.0.1:9999`, '        access: read'))).toEqual([]);
  });
});
