import { describe, expect, it } from 'vitest';
import { envInputReader, parseInputs, parseReportingInputs } from '../../src/inputs.js';
import { makeTestPki } from './tls.js';

const reader = (inputs: Record<string, string>) =>
  envInputReader(Object.fromEntries(Object.entries(inputs).map(([k, v]) => [`INPUT_${k.toUpperCase()}`, v])));
const noFiles = (path: string): string => {
  throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
};

describe('action inputs', () => {
  it('reads INPUT_* the way the runner names them (upper case, dashes kept) and applies defaults', () => {
    const read = envInputReader({
      'INPUT_BROKER-URL': '  https://hoop.example.com/  ',
      'INPUT_FAIL-ON-DENIED': 'TRUE',
    });
    const parsed = parseInputs(read, noFiles);
    expect(parsed).toEqual({
      ok: true,
      value: {
        brokerUrl: 'https://hoop.example.com',
        audience: 'https://hoop.example.com',
        targets: [],
        ttl: undefined,
        caCertPem: undefined,
        reporting: { githubToken: '', jobSummary: true, checkRun: true, failOnDenied: true },
      },
    });
  });

  it('keeps a path prefix, splits targets on commas and newlines, takes an explicit audience', () => {
    const parsed = parseInputs(
      reader({
        'broker-url': 'https://ci.example.com/hoop/',
        targets: 'orders-db, analytics\nlogs\n\norders-db',
        audience: 'hoop',
        ttl: '1h30m',
      }),
      noFiles,
    );
    expect(parsed).toMatchObject({
      ok: true,
      value: {
        brokerUrl: 'https://ci.example.com/hoop',
        audience: 'hoop',
        targets: ['orders-db', 'analytics', 'logs'],
        ttl: '1h30m',
      },
    });
  });

  it('lists every problem, naming the input', () => {
    const parsed = parseInputs(
      reader({
        'broker-url': 'http://hoop.example.com',
        ttl: '15 minutes',
        targets: 'ok,bad name!',
        'job-summary': 'yes',
        'ca-cert': '/nope.pem',
      }),
      noFiles,
    );
    expect(parsed).toEqual({
      ok: false,
      errors: [
        'broker-url: plain http is only allowed for a broker on this machine (localhost); use https://hoop.example.com',
        'targets: "name!" is not a target name',
        'ttl: "15 minutes" is not a duration like 15m, 1h or 1h30m',
        'ca-cert: cannot read the file "/nope.pem" (ENOENT); give a PEM certificate or a path to one',
        'job-summary: "yes" is not a boolean (use true or false)',
      ],
    });
  });

  it('requires broker-url and refuses credentials, queries and other schemes', () => {
    expect(parseInputs(reader({}), noFiles)).toMatchObject({
      ok: false,
      errors: [expect.stringMatching(/^broker-url: required/)],
    });
    for (const url of ['https://u:p@h.example', 'https://h.example/?a=1', 'ftp://h.example', 'not a url'])
      expect(parseInputs(reader({ 'broker-url': url }), noFiles).ok).toBe(false);
    for (const url of ['http://127.0.0.1:8080', 'http://localhost:1', 'http://[::1]:9'])
      expect(parseInputs(reader({ 'broker-url': url }), noFiles).ok).toBe(true);
  });

  it('takes ca-cert as PEM text or as a path, and checks it is a certificate', () => {
    const { caPem } = makeTestPki();
    const asText = parseInputs(reader({ 'broker-url': 'https://h.example', 'ca-cert': caPem }), noFiles);
    expect(asText).toMatchObject({ ok: true, value: { caCertPem: `${caPem.trim()}\n` } });
    const asPath = parseInputs(reader({ 'broker-url': 'https://h.example', 'ca-cert': '/ca.pem' }), (p) =>
      p === '/ca.pem' ? caPem : '',
    );
    expect(asPath).toMatchObject({ ok: true, value: { caCertPem: `${caPem.trim()}\n` } });
    const garbage = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----';
    expect(parseInputs(reader({ 'broker-url': 'https://h.example', 'ca-cert': garbage }), noFiles)).toEqual({
      ok: false,
      errors: ['ca-cert: certificate 1 is not a valid X.509 certificate'],
    });
  });

  it('parses the reporting inputs alone for the post step', () => {
    expect(parseReportingInputs(reader({ 'github-token': 'ghs_x', 'check-run': 'false' }))).toEqual({
      ok: true,
      value: { githubToken: 'ghs_x', jobSummary: true, checkRun: false, failOnDenied: false },
    });
  });
});
