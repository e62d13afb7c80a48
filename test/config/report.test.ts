import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../../service/config/duration.js';
import { loadConfigText } from '../../service/config/load.js';
import { formatConfigPath, parseConfigPath } from '../../service/config/path.js';
import { formatConfigErrors } from '../../service/config/report.js';

describe('formatConfigErrors', () => {
  it('prints FILE:LINE:COL path: message per error and a count', () => {
    const text = formatConfigErrors('hoop.yaml', [
      { path: '', line: 3, column: 1, message: 'invalid YAML: Tabs are not allowed as indentation' },
      { path: 'targets[0].password', line: 15, column: 15, message: 'environment variable PW is not set' },
      { path: 'store.url', line: 0, column: 0, message: 'cannot read secret file /x: no such file' },
    ]);
    expect(text).toBe(
      [
        'hoop.yaml:3:1 invalid YAML: Tabs are not allowed as indentation',
        'hoop.yaml:15:15 targets[0].password: environment variable PW is not set',
        'hoop.yaml store.url: cannot read secret file /x: no such file',
        '3 errors in hoop.yaml',
        '',
      ].join('\n'),
    );
    expect(formatConfigErrors('a.yaml', [{ path: 'x', line: 1, column: 1, message: 'm' }])).toBe(
      'a.yaml:1:1 x: m\n1 error in a.yaml\n',
    );
  });

  it('reports every duplicate key of a file', () => {
    const result = loadConfigText('listen: {}\nlisten: {}\nissuers: []\nissuers: []\n', 'dup.yaml');
    expect(result.ok === false && formatConfigErrors('dup.yaml', result.errors)).toBe(
      "dup.yaml:2:1 listen: duplicate key 'listen'\ndup.yaml:4:1 issuers: duplicate key 'issuers'\n2 errors in dup.yaml\n",
    );
  });
});

describe('durations', () => {
  it('parses h, m, s in order and refuses zero and malformed text', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('15m')).toBe(900_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1h0m5s')).toBe(3_605_000);
    for (const bad of [
      '',
      '0s',
      '0h0m',
      '15',
      'm',
      '1d',
      '30m1h',
      '1.5h',
      ' 1h',
      '-1m',
      '1H',
      '99999999999999999h',
    ]) {
      expect(parseDuration(bad), bad).toBeNull();
    }
  });

  it('formats milliseconds as the shortest config text', () => {
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(90_000)).toBe('1m30s');
    expect(formatDuration(3_600_000)).toBe('1h');
    expect(formatDuration(1_500)).toBe('1s500ms');
    expect(formatDuration(0)).toBe('0s');
    expect(parseDuration(formatDuration(86_399_000))).toBe(86_399_000);
  });
});

describe('config paths', () => {
  it('formats and parses the dotted form', () => {
    const cases: [(string | number)[], string][] = [
      [[], ''],
      [['targets', 0, 'password'], 'targets[0].password'],
      [['policies', 1, 'when', 'ref', 2], 'policies[1].when.ref[2]'],
      [['policies', 0, 'when', 'a.b'], 'policies[0].when["a.b"]'],
      [['policies', 0, 'when', 'job_workflow_ref'], 'policies[0].when.job_workflow_ref'],
      [['x', 'say "hi"'], 'x["say \\"hi\\""]'],
    ];
    for (const [segments, text] of cases) {
      expect(formatConfigPath(segments)).toBe(text);
      expect(parseConfigPath(text)).toEqual(segments);
    }
    expect(parseConfigPath('targets[x]')).toBeNull();
  });
});
