import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ConfigError, loadConfigFile, loadConfigText, withDefaults } from '../../service/config/load.js';

// The base config every case edits. Line numbers matter: cases replace whole lines.
const BASE = [
  /*  1 */ 'listen:',
  /*  2 */ '  http: { port: 8080 }',
  /*  3 */ '  postgres: { port: 6432 }',
  /*  4 */ 'issuers:',
  /*  5 */ '  - name: github',
  /*  6 */ '    issuer: https://token.actions.githubusercontent.com',
  /*  7 */ '    audience: https://hoop.example.com',
  /*  8 */ 'targets:',
  /*  9 */ '  - name: orders-db',
  /* 10 */ '    kind: postgres',
  /* 11 */ '    host: db.internal',
  /* 12 */ '    port: 5432',
  /* 13 */ '    database: orders',
  /* 14 */ '    user: ci_migrator',
  /* 15 */ '    password: { env: ORDERS_DB_PASSWORD }',
  /* 16 */ 'policies:',
  /* 17 */ '  - name: pull-requests-read-only',
  /* 18 */ '    when: { repository_id: "123456", event_name: pull_request }',
  /* 19 */ '    ttl: 15m',
  /* 20 */ '    grants:',
  /* 21 */ '      - target: orders-db',
  /* 22 */ '        access: read',
  /* 23 */ '        mask: [{ column: "customers.email" }, { detector: credit_card }]',
  /* 24 */ '        deny: [{ statement: [DROP, TRUNCATE] }]',
];

/** BASE with some lines replaced (1-based); a replacement may hold several lines. */
function edit(replacements: Record<number, string>, append = ''): string {
  const lines = BASE.map((line, index) => replacements[index + 1] ?? line);
  return `${lines.join('\n')}\n${append}`;
}

const INLINE = 'inline secret refused: use {env: NAME} or {file: PATH}';

interface BadCase {
  name: string;
  yaml: string;
  errors: ConfigError[];
}

const BAD_CASES: BadCase[] = [
  {
    name: 'YAML syntax error (unclosed flow mapping)',
    yaml: edit({ 18: '    when: { repository_id: "123456", event_name: pull_request' }),
    errors: [
      {
        path: '',
        line: 19,
        column: 5,
        message: 'invalid YAML: Flow map in block collection must be sufficiently indented and end with a }',
      },
    ],
  },
  {
    name: 'duplicate key',
    yaml: edit({ 14: '    host: db2.internal' }),
    errors: [{ path: 'targets[0].host', line: 14, column: 5, message: "duplicate key 'host'" }],
  },
  {
    name: 'tab indentation',
    yaml: edit({ 14: '\tuser: ci_migrator' }),
    errors: [{ path: '', line: 14, column: 1, message: 'invalid YAML: Tabs are not allowed as indentation' }],
  },
  {
    name: 'empty file',
    yaml: '# nothing here\n',
    errors: [{ path: '', line: 1, column: 1, message: 'the configuration is empty' }],
  },
  {
    name: 'unknown key with suggestion (and the property it misspells is missing)',
    yaml: edit({ 15: '    pasword: { env: ORDERS_DB_PASSWORD }' }),
    errors: [
      { path: 'targets[0].password', line: 9, column: 5, message: "missing required property 'password'" },
      {
        path: 'targets[0].pasword',
        line: 15,
        column: 5,
        message: "unknown property 'pasword' (did you mean 'password'?)",
      },
    ],
  },
  {
    name: 'unknown key without a close match lists the allowed ones',
    yaml: edit({ 2: '  http: { port: 8080, color: blue }' }),
    errors: [
      {
        path: 'listen.http.color',
        line: 2,
        column: 23,
        message: "unknown property 'color' (allowed: port, host)",
      },
    ],
  },
  {
    name: 'misspelled top-level section',
    yaml: edit({ 16: 'polices:' }),
    errors: [
      { path: 'policies', line: 1, column: 1, message: "missing required property 'policies'" },
      {
        path: 'polices',
        line: 16,
        column: 1,
        message: "unknown property 'polices' (did you mean 'policies'?)",
      },
    ],
  },
  {
    name: 'wrong type: port given as a string',
    yaml: edit({ 12: '    port: "5432"' }),
    errors: [
      { path: 'targets[0].port', line: 12, column: 11, message: 'must be an integer between 0 and 65535' },
    ],
  },
  {
    name: 'wrong type: a section that must be a mapping',
    yaml: edit({ 1: 'listen: 8080', 2: '#', 3: '#' }),
    errors: [{ path: 'listen', line: 1, column: 9, message: 'expected a mapping, got a number' }],
  },
  {
    name: 'wrong type: a list where a mapping is expected',
    yaml: edit({ 18: '    when: [repository_id]' }),
    errors: [{ path: 'policies[0].when', line: 18, column: 11, message: 'expected a mapping, got a list' }],
  },
  {
    name: 'bad port',
    yaml: edit({ 2: '  http: { port: 70000 }' }),
    errors: [
      { path: 'listen.http.port', line: 2, column: 17, message: 'must be an integer between 0 and 65535' },
    ],
  },
  {
    name: 'listener ports collide',
    yaml: edit({ 3: '  postgres: { port: 8080 }' }),
    errors: [
      {
        path: 'listen.postgres.port',
        line: 3,
        column: 21,
        message: 'port 8080 is already used by listen.http',
      },
    ],
  },
  {
    name: 'missing required issuers',
    yaml: edit({ 4: '#', 5: '#', 6: '#', 7: '#' }),
    errors: [{ path: 'issuers', line: 1, column: 1, message: "missing required property 'issuers'" }],
  },
  {
    name: 'empty issuers list',
    yaml: edit({ 4: 'issuers: []', 5: '#', 6: '#', 7: '#' }),
    errors: [{ path: 'issuers', line: 4, column: 10, message: 'must list at least one entry' }],
  },
  {
    name: 'inline target password',
    yaml: edit({ 15: '    password: hunter2' }),
    errors: [{ path: 'targets[0].password', line: 15, column: 15, message: INLINE }],
  },
  {
    name: 'inline numeric target password',
    yaml: edit({ 15: '    password: 12345678' }),
    errors: [{ path: 'targets[0].password', line: 15, column: 15, message: INLINE }],
  },
  {
    name: 'password with no value',
    yaml: edit({ 15: '    password:' }),
    errors: [
      {
        path: 'targets[0].password',
        line: 15,
        column: 5,
        message: 'missing secret reference: use {env: NAME} or {file: PATH}',
      },
    ],
  },
  {
    name: 'inline admin token',
    yaml: edit({}, 'admin:\n  tokens:\n    - name: ops\n      token: s3cr3t-admin\n'),
    errors: [{ path: 'admin.tokens[0].token', line: 28, column: 14, message: INLINE }],
  },
  {
    name: 'store url with a password',
    yaml: edit({}, 'store: { url: "postgres://hoop:pw@db.internal/hoop" }\n'),
    errors: [{ path: 'store.url', line: 25, column: 15, message: INLINE }],
  },
  {
    name: 'store url with a password query parameter',
    yaml: edit({}, 'store: { url: "postgres://hoop@db.internal/hoop?password=pw" }\n'),
    errors: [{ path: 'store.url', line: 25, column: 15, message: INLINE }],
  },
  {
    name: 'store url of the wrong kind',
    yaml: edit({}, 'store: { url: 5432 }\n'),
    errors: [
      {
        path: 'store.url',
        line: 25,
        column: 15,
        message: 'expected a postgres:// URL or {env: NAME} or {file: PATH}, got a number',
      },
    ],
  },
  {
    name: 'store url that is not a PostgreSQL URL',
    yaml: edit({}, 'store: { url: "mysql://db.internal/hoop" }\n'),
    errors: [
      { path: 'store.url', line: 25, column: 15, message: 'must be a postgres:// or postgresql:// URL' },
    ],
  },
  {
    name: 'public_url that is not a URL',
    yaml: edit({}, 'public_url: hoop.example.com\n'),
    errors: [{ path: 'public_url', line: 25, column: 13, message: 'must be an http:// or https:// URL' }],
  },
  {
    name: 'secret reference naming both env and file',
    yaml: edit({ 15: '    password: { env: ORDERS_DB_PASSWORD, file: /run/secrets/orders }' }),
    errors: [
      { path: 'targets[0].password', line: 15, column: 15, message: 'expected {env: NAME} or {file: PATH}' },
    ],
  },
  {
    name: 'bad env var name',
    yaml: edit({ 15: '    password: { env: 1ORDERS }' }),
    errors: [
      {
        path: 'targets[0].password.env',
        line: 15,
        column: 22,
        message: 'must be an environment variable name: letters, digits and "_", not starting with a digit',
      },
    ],
  },
  {
    name: 'unknown target kind',
    yaml: edit({ 10: '    kind: postgress' }),
    errors: [{ path: 'targets[0].kind', line: 10, column: 11, message: 'must be postgres' }],
  },
  {
    name: 'bad target name',
    yaml: edit({ 9: '  - name: Orders DB', 21: '      - target: Orders DB' }),
    errors: [
      {
        path: 'targets[0].name',
        line: 9,
        column: 11,
        message: 'must use lowercase letters, digits, "-" and "_", starting with a letter or digit',
      },
    ],
  },
  {
    name: 'unknown grant target',
    yaml: edit({ 21: '      - target: ordrs-db' }),
    errors: [
      {
        path: 'policies[0].grants[0].target',
        line: 21,
        column: 17,
        message: "unknown target 'ordrs-db' (configured targets: orders-db)",
      },
    ],
  },
  {
    name: 'duplicate target names',
    yaml: edit({
      15: [
        '    password: { env: ORDERS_DB_PASSWORD }',
        '  - name: orders-db',
        '    kind: postgres',
        '    host: db2.internal',
        '    database: orders',
        '    user: ci',
        '    password: { env: OTHER }',
      ].join('\n'),
    }),
    errors: [
      {
        path: 'targets[1].name',
        line: 16,
        column: 11,
        message: "duplicate target name 'orders-db' (first defined on line 9)",
      },
    ],
  },
  {
    name: 'two grants for one target in a policy',
    yaml: edit({
      24: '        deny: [{ statement: [DROP] }]\n      - target: orders-db\n        access: write',
    }),
    errors: [
      {
        path: 'policies[0].grants[1].target',
        line: 25,
        column: 17,
        message: "target 'orders-db' is already granted by this policy (line 21); use one grant per target",
      },
    ],
  },
  {
    name: 'bad access level',
    yaml: edit({ 22: '        access: rw' }),
    errors: [
      {
        path: 'policies[0].grants[0].access',
        line: 22,
        column: 17,
        message: 'expected one of: read, write, admin',
      },
    ],
  },
  {
    name: 'access level in the wrong case',
    yaml: edit({ 22: '        access: READ' }),
    errors: [
      {
        path: 'policies[0].grants[0].access',
        line: 22,
        column: 17,
        message: "expected one of: read, write, admin (did you mean 'read'?)",
      },
    ],
  },
  {
    name: 'bad regex condition',
    yaml: edit({ 18: '    when: { repository_id: "123456", ref: "/refs/heads/[main/" }' }),
    errors: [
      {
        path: 'policies[0].when.ref',
        line: 18,
        column: 43,
        message: 'invalid regular expression /refs/heads/[main/: Unterminated character class',
      },
    ],
  },
  {
    name: 'bad regex inside a list of condition values',
    yaml: edit({ 18: '    when: { repository_id: "123456", ref: [refs/heads/main, "/(/"] }' }),
    errors: [
      {
        path: 'policies[0].when.ref[1]',
        line: 18,
        column: 61,
        message: 'invalid regular expression /(/: Unterminated group',
      },
    ],
  },
  {
    name: 'condition value of the wrong type',
    yaml: edit({ 18: '    when: { repository_id: { id: 1 } }' }),
    errors: [
      {
        path: 'policies[0].when.repository_id',
        line: 18,
        column: 28,
        message: 'expected a string, number, boolean, or a list of them',
      },
    ],
  },
  {
    name: 'empty when matches everything and is refused',
    yaml: edit({ 18: '    when: {}' }),
    errors: [
      {
        path: 'policies[0].when',
        line: 18,
        column: 11,
        message: 'must name at least one claim condition (an empty "when" matches every token)',
      },
    ],
  },
  {
    name: 'bad duration',
    yaml: edit({ 19: '    ttl: 15x' }),
    errors: [
      {
        path: 'policies[0].ttl',
        line: 19,
        column: 10,
        message: 'must be a duration like 90s, 15m, 1h or 1h30m',
      },
    ],
  },
  {
    name: 'zero duration',
    yaml: edit({ 19: '    ttl: 0m' }),
    errors: [
      {
        path: 'policies[0].ttl',
        line: 19,
        column: 10,
        message: 'must be a duration greater than zero, like 90s, 15m, 1h or 1h30m',
      },
    ],
  },
  {
    name: 'ttl above the default max_ttl',
    yaml: edit({ 19: '    ttl: 2h' }),
    errors: [
      {
        path: 'policies[0].ttl',
        line: 19,
        column: 10,
        message: '2h is longer than sessions.max_ttl (1h, the default)',
      },
    ],
  },
  {
    name: 'ttl above a configured max_ttl',
    yaml: edit({}, 'sessions: { max_ttl: 10m }\n'),
    errors: [
      { path: 'policies[0].ttl', line: 19, column: 10, message: '15m is longer than sessions.max_ttl (10m)' },
    ],
  },
  {
    name: 'clock skew too large',
    yaml: edit({}, 'limits: { clock_skew: 1h }\n'),
    errors: [{ path: 'limits.clock_skew', line: 25, column: 23, message: 'must be at most 5m' }],
  },
  {
    name: 'unknown policy issuer',
    yaml: edit({ 19: '    issuer: gh' }),
    errors: [
      {
        path: 'policies[0].issuer',
        line: 19,
        column: 13,
        message: "unknown issuer 'gh' (configured issuers: github)",
      },
    ],
  },
  {
    name: 'http issuer (non-loopback)',
    yaml: edit({ 6: '    issuer: http://token.example.com' }),
    errors: [
      {
        path: 'issuers[0].issuer',
        line: 6,
        column: 13,
        message: 'must be an https URL (http is allowed only for 127.0.0.1, localhost and [::1])',
      },
    ],
  },
  {
    name: 'jwks_uri that is not a URL',
    yaml: edit({ 7: '    audience: https://hoop.example.com\n    jwks_uri: keys.json' }),
    errors: [{ path: 'issuers[0].jwks_uri', line: 8, column: 15, message: 'must be an https URL' }],
  },
  {
    name: 'symmetric algorithm',
    yaml: edit({ 7: '    audience: https://hoop.example.com\n    algorithms: [RS256, HS256]' }),
    errors: [
      {
        path: 'issuers[0].algorithms[1]',
        line: 8,
        column: 25,
        message:
          'expected one of: RS256, RS384, RS512, PS256, ES256, ES384 (HMAC and "none" are never accepted)',
      },
    ],
  },
  {
    name: 'bad mask rule (misspelled key)',
    yaml: edit({ 23: '        mask: [{ colum: "customers.email" }]' }),
    errors: [
      {
        path: 'policies[0].grants[0].mask[0].colum',
        line: 23,
        column: 18,
        message: "unknown property 'colum' (did you mean 'column'?)",
      },
    ],
  },
  {
    name: 'bad mask rule (column without a table)',
    yaml: edit({ 23: '        mask: [{ column: "email" }]' }),
    errors: [
      {
        path: 'policies[0].grants[0].mask[0].column',
        line: 23,
        column: 26,
        message:
          'must be "table.column" or "schema.table.column" in SQL identifiers (quote mixed-case or unusual names: customers."Email")',
      },
    ],
  },
  {
    name: 'bad mask rule (column that is not an identifier)',
    yaml: edit({ 23: '        mask: [{ column: "customers.e-mail" }]' }),
    errors: [
      {
        path: 'policies[0].grants[0].mask[0].column',
        line: 23,
        column: 26,
        message:
          'must be "table.column" or "schema.table.column" in SQL identifiers (quote mixed-case or unusual names: customers."Email"): "customers.e-mail": unexpected "-" after an identifier (quote names with spaces or symbols)',
      },
    ],
  },
  {
    name: 'bad mask rule (unknown detector)',
    yaml: edit({ 23: '        mask: [{ detector: ssn }]' }),
    errors: [
      {
        path: 'policies[0].grants[0].mask[0].detector',
        line: 23,
        column: 28,
        message: 'expected one of: email, credit_card, api_key, iban',
      },
    ],
  },
  {
    name: 'bad mask rule (neither form)',
    yaml: edit({ 23: '        mask: [{ strict: true }]' }),
    errors: [
      {
        path: 'policies[0].grants[0].mask[0]',
        line: 23,
        column: 16,
        message:
          'expected a mask rule: {column: "table.column"} or {detector: email|credit_card|api_key|iban}',
      },
    ],
  },
  {
    name: 'bad deny rule (misspelled key)',
    yaml: edit({ 24: '        deny: [{ statements: [DROP] }]' }),
    errors: [
      {
        path: 'policies[0].grants[0].deny[0].statements',
        line: 24,
        column: 18,
        message: "unknown property 'statements' (did you mean 'statement'?)",
      },
    ],
  },
  {
    name: 'bad deny rule (lower-case statement kind)',
    yaml: edit({ 24: '        deny: [{ statement: [drop] }]' }),
    errors: [
      {
        path: 'policies[0].grants[0].deny[0].statement[0]',
        line: 24,
        column: 30,
        message: 'must be an upper-case statement kind like DROP or TRUNCATE',
      },
    ],
  },
  {
    name: 'bad deny rule (a bare string)',
    yaml: edit({ 24: '        deny: [DROP]' }),
    errors: [
      {
        path: 'policies[0].grants[0].deny[0]',
        line: 24,
        column: 16,
        message:
          'expected a deny rule: {statement: [KIND, …]}, {table: [NAME, …]} or {function: [NAME, …]}, got a string',
      },
    ],
  },
  {
    name: 'several errors at once: all reported, sorted by line',
    yaml: edit({
      2: '  http: { port: -1 }',
      12: '    prot: 5432',
      15: '    password: hunter2',
      22: '        access: owner',
    }),
    errors: [
      { path: 'listen.http.port', line: 2, column: 17, message: 'must be an integer between 0 and 65535' },
      {
        path: 'targets[0].prot',
        line: 12,
        column: 5,
        message: "unknown property 'prot' (did you mean 'port'?)",
      },
      { path: 'targets[0].password', line: 15, column: 15, message: INLINE },
      {
        path: 'policies[0].grants[0].access',
        line: 22,
        column: 17,
        message: 'expected one of: read, write, admin',
      },
    ],
  },
  {
    name: 'several semantic errors at once',
    yaml: edit({ 6: '    issuer: http://issuer.example', 19: '    issuer: gh', 21: '      - target: nope' }),
    errors: [
      {
        path: 'issuers[0].issuer',
        line: 6,
        column: 13,
        message: 'must be an https URL (http is allowed only for 127.0.0.1, localhost and [::1])',
      },
      {
        path: 'policies[0].issuer',
        line: 19,
        column: 13,
        message: "unknown issuer 'gh' (configured issuers: github)",
      },
      {
        path: 'policies[0].grants[0].target',
        line: 21,
        column: 17,
        message: "unknown target 'nope' (configured targets: orders-db)",
      },
    ],
  },
];

describe('loadConfigText: bad configs', () => {
  it('has a table of at least 25 cases', () => {
    expect(BAD_CASES.length).toBeGreaterThanOrEqual(25);
  });

  it.each(BAD_CASES)('$name', ({ yaml, errors }) => {
    const result = loadConfigText(yaml, 'hoop.yaml');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors).toEqual(errors);
  });

  it('never echoes an inline secret in any message', () => {
    for (const yaml of [
      edit({ 15: '    password: hunter2-very-secret' }),
      edit({}, 'store: { url: "postgres://u:topsecretpw@h/db" }\n'),
    ]) {
      const result = loadConfigText(yaml, 'hoop.yaml');
      expect(JSON.stringify(result)).not.toMatch(/hunter2|topsecretpw/);
    }
  });
});

describe('loadConfigText: good configs', () => {
  it('loads the base config and applies defaults', () => {
    const result = loadConfigText(edit({}), 'hoop.yaml');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.source).toBe('hoop.yaml');
    expect(result.locate('targets[0].password')).toEqual({ line: 15, column: 15 });
    expect(result.locate('policies[0].grants[0].mask[1].detector')).toEqual({ line: 23, column: 59 });
    const config = withDefaults(result.config);
    expect(config.data_dir).toBe('.hoop');
    expect(config.http_tls).toBe(false);
    expect(config.listen).toEqual({
      http: { port: 8080, host: '127.0.0.1' },
      postgres: { port: 6432, host: '127.0.0.1', allow_cleartext_password: false },
    });
    expect(config.sessions).toEqual({
      max_ttl: '1h',
      max_ttl_ms: 3_600_000,
      default_ttl: '30m',
      default_ttl_ms: 1_800_000,
    });
    expect(config.limits).toEqual({
      max_token_bytes: 16384,
      session_rate_per_minute: 120,
      clock_skew: '30s',
      clock_skew_ms: 30_000,
    });
    expect(config.issuers[0]?.algorithms).toEqual(['RS256']);
    expect(config.targets[0]).toMatchObject({
      port: 5432,
      tls: { mode: 'verify-full' },
      max_connections_per_session: 10,
    });
    expect(config.policies[0]?.ttl_ms).toBe(900_000);
    expect(config.admin).toEqual({ tokens: [] });
    expect(config.log).toEqual({ level: 'info' });
  });

  it('loads a quick-start style config: loopback http issuer, store by reference, admin tokens, listener hosts', () => {
    const yaml = [
      'listen:',
      '  http: { port: 0, host: 0.0.0.0 }',
      '  postgres: { port: 0, public_host: broker.internal }',
      'data_dir: /var/lib/hoop',
      'store: { url: { env: HOOP_STORE_URL } }',
      'sessions: { max_ttl: 2h, default_ttl: 20m }',
      'issuers:',
      '  - name: test',
      '    issuer: http://127.0.0.1:9999',
      '    audience: hoop',
      '    jwks_uri: http://localhost:9999/jwks',
      '    algorithms: [RS256, ES256]',
      'targets:',
      '  - name: local-db',
      '    kind: postgres',
      '    host: 127.0.0.1',
      '    database: app',
      '    user: app',
      '    password: { file: ./secrets/app }',
      'policies:',
      '  - name: main-branch',
      '    issuer: test',
      '    when:',
      '      repository_id: 123456',
      '      ref: [refs/heads/main, "/refs/tags/v[0-9]+/"]',
      '      ref_protected: true',
      '    grants:',
      '      - { target: local-db, access: write }',
      'admin:',
      '  tokens: [{ name: ops, token: { env: HOOP_ADMIN_TOKEN } }]',
      'log: { level: debug }',
    ].join('\n');
    const result = loadConfigText(yaml, 'quickstart.yaml');
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const config = withDefaults(result.config);
    expect(config.listen).toEqual({
      http: { port: 0, host: '0.0.0.0' },
      postgres: { port: 0, host: '0.0.0.0', public_host: 'broker.internal', allow_cleartext_password: false },
    });
    expect(config.data_dir).toBe('/var/lib/hoop');
    expect(config.targets[0]).toMatchObject({ port: 5432, tls: { mode: 'disable' } });
    expect(config.sessions).toEqual({
      max_ttl: '2h',
      max_ttl_ms: 7_200_000,
      default_ttl: '20m',
      default_ttl_ms: 1_200_000,
    });
    expect(config.policies[0]?.ttl_ms).toBe(7_200_000);
    expect(config.policies[0]?.when).toEqual({
      repository_id: 123456,
      ref: ['refs/heads/main', '/refs/tags/v[0-9]+/'],
      ref_protected: true,
    });
    expect(config.log.level).toBe('debug');
  });

  it('accepts a store url without a password', () => {
    const result = loadConfigText(
      edit({}, 'store: { url: "postgres://hoop@db.internal:5432/hoop" }\n'),
      'x.yaml',
    );
    expect(result.ok).toBe(true);
  });
});

describe('loadConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hoop-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('loads a file and reports a missing one without a position', async () => {
    const path = join(dir, 'hoop.yaml');
    writeFileSync(path, edit({}));
    const loaded = await loadConfigFile(path);
    expect(loaded.ok && loaded.source).toBe(path);
    const missing = await loadConfigFile(join(dir, 'nope.yaml'));
    expect(missing).toEqual({
      ok: false,
      errors: [{ path: '', line: 0, column: 0, message: 'cannot read the file: no such file' }],
    });
  });
});
