import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../service/config/load.js';

const CONFIG = (target: string, grant: string) => `listen:
  http: { port: 8080 }
  kubernetes: { port: 8443 }
issuers:
  - name: github
    issuer: https://token.actions.githubusercontent.com
    audience: https://hoop.example.com
targets:
  - name: orders-db
    kind: postgres
    host: db.internal
    database: orders
    user: ci
    password: { env: ORDERS_DB_PASSWORD }
${target}
policies:
  - name: deploys
    when: { ref: refs/heads/main }
    grants:
${grant}
`;

const TARGET = `  - name: staging
    kind: kubernetes
    server: https://k8s.internal:6443
    ca_file: /etc/hoop/staging-ca.pem
    credentials: { token: { file: /run/secrets/staging-token } }
    impersonate: { user: "github:{repository}", groups: ["env:{environment}"] }
    namespace: web`;

const GRANT = `      - target: staging
        access: write
        mask: [{ detector: email }]
        kubernetes:
          presets: [debug]
          deny: [{ verbs: [delete, deletecollection], namespaces: [kube-*] }]
          approve: [{ verbs: [delete], namespaces: [prod] }]
          ports: [8080]
          record_output: true`;

describe('kubernetes targets and grants in the config', () => {
  it('a kubernetes target and its grant load', () => {
    const r = loadConfigText(CONFIG(TARGET, GRANT), 'hoop.yaml');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const t = r.config.targets.find((x) => x.name === 'staging');
    expect(t).toMatchObject({
      kind: 'kubernetes',
      credentials: { token: { file: '/run/secrets/staging-token' } },
    });
    expect(r.config.listen.kubernetes).toMatchObject({ port: 8443 });
  });

  it.each([
    [
      'an http API server',
      CONFIG(TARGET.replace('https://k8s', 'http://k8s'), GRANT),
      'targets[1].server',
      'must be an https URL',
    ],
    [
      'an inline token',
      CONFIG(TARGET.replace('{ token: { file: /run/secrets/staging-token } }', '{ token: abc }'), GRANT),
      'targets[1].credentials',
      '',
    ],
    [
      'kubernetes rules on a postgres grant',
      CONFIG(
        TARGET,
        `${GRANT}\n      - target: orders-db\n        access: read\n        kubernetes: { ports: [1] }`,
      ),
      'policies[0].grants[1].kubernetes',
      'kubernetes rules apply to kubernetes targets only',
    ],
    [
      'an unknown verb',
      CONFIG(TARGET, GRANT.replace('[delete, deletecollection]', '[delete, remove]')),
      'policies[0].grants[0].kubernetes.deny[0].verbs[1]',
      "unknown verb 'remove'",
    ],
    [
      'an unknown preset',
      CONFIG(TARGET, GRANT.replace('[debug]', '[root]')),
      'policies[0].grants[0].kubernetes.presets[0]',
      '',
    ],
  ])('refuses %s', (_name, yaml, path, message) => {
    const r = loadConfigText(yaml, 'hoop.yaml');
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const e = r.errors.find((x) => x.path.startsWith(path));
    expect(e, JSON.stringify(r.errors)).toBeDefined();
    expect(e!.message).toContain(message);
  });
});
