import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { Policy } from '../../service/config/schema.js';
import {
  type Condition,
  conditionProblem,
  describeCondition,
  evaluatePolicies,
  MAX_MATCHED_VALUE_CHARS,
  matchCondition,
  subjectForms,
} from '../../service/policy/match.js';

/** Claims as GitHub Actions sends them: ids and flags are strings. */
const claims: Record<string, unknown> = {
  iss: 'https://token.actions.githubusercontent.com',
  sub: 'repo:octo-org/octo-repo:ref:refs/heads/main',
  repository: 'octo-org/octo-repo',
  repository_id: '123456',
  repository_owner: 'octo-org',
  repository_owner_id: '654321',
  ref: 'refs/heads/feature/login-form',
  ref_type: 'branch',
  ref_protected: 'true',
  event_name: 'pull_request',
  environment: 'production',
  head_ref: '',
  job_workflow_ref: 'octo-org/workflows/.github/workflows/deploy.yml@refs/tags/v1.4.0',
  run_attempt: '1',
  numeric_claim: 42,
  boolean_claim: false,
  groups: ['a', 'b'],
};

describe('matchCondition', () => {
  const table: [string, Condition, unknown, boolean][] = [
    // exact
    ['exact string', 'production', 'production', true],
    ['exact is case-sensitive', 'Production', 'production', false],
    ['exact differs', 'staging', 'production', false],
    ['number condition vs string id claim', 123456, '123456', true],
    ['string condition vs string id claim', '123456', '123456', true],
    ['number condition vs other id', 123456, '1234567', false],
    ['string condition vs numeric claim', '42', 42, true],
    ['boolean true vs "true"', true, 'true', true],
    ['boolean true vs true', true, true, true],
    ['boolean true vs "false"', true, 'false', false],
    ['boolean false vs false', false, false, true],
    ['empty string is a value', '', '', true],
    // glob
    ['glob * crosses /', 'refs/heads/*', 'refs/heads/feature/x', true],
    ['glob * matches empty', 'refs/heads/*', 'refs/heads/', true],
    ['glob prefix mismatch', 'refs/heads/*', 'refs/tags/v1', false],
    ['glob ? is one char', 'v?.0', 'v1.0', true],
    ['glob ? is exactly one char', 'v?.0', 'v10.0', false],
    ['glob ? is one code point', 'x?y', 'x😀y', true],
    [
      'glob middle star',
      'octo-org/*/.github/workflows/deploy.yml@*',
      'octo-org/workflows/.github/workflows/deploy.yml@refs/tags/v1',
      true,
    ],
    ['glob escaped star is literal', 'a\\*b', 'a*b', true],
    ['glob escaped star is not a wildcard', 'a\\*b', 'axxb', false],
    ['glob many stars', '*a*b*c*', 'xxaxxbxxcxx', true],
    ['glob many stars, no match', '*a*b*c*d', 'xxaxxbxxcxx', false],
    ['glob * alone matches empty', '*', '', true],
    // regex
    ['regex anchored full match', '/refs\\/heads\\/(main|release-.*)/', 'refs/heads/release-1.2', true],
    ['regex anchored: no partial match', '/main/', 'refs/heads/main', false],
    ['regex alternation is anchored as a whole', '/a|b/', 'ab', false],
    ['regex digits', '/[0-9]+/', '123456', true],
    ['regex on a numeric claim', '/4[0-9]/', 42, true],
    // alternatives
    ['list: one matches', ['staging', 'production'], 'production', true],
    [
      'list: mixed kinds',
      ['refs/heads/main', 'refs/tags/*', '/refs\\/heads\\/release-[0-9]+/'],
      'refs/tags/v2',
      true,
    ],
    ['list: none matches', ['staging', 'dev*'], 'production', false],
    ['list of numbers', [111, 123456], '123456', true],
    // absent and non-scalar
    ['absent claim', 'x', undefined, false],
    ['null claim', 'x', null, false],
    ['array claim never matches', 'a', ['a'], false],
    ['object claim never matches', '*', { a: 1 }, false],
  ];
  it.each(table)('%s', (_name, expected, actual, ok) => {
    expect(matchCondition(expected, actual).ok).toBe(ok);
  });

  it('says why a condition failed', () => {
    expect(matchCondition('staging', 'production')).toEqual({
      ok: false,
      message: '"production" does not equal "staging"',
    });
    expect(matchCondition('refs/heads/*', 'refs/tags/v1')).toEqual({
      ok: false,
      message: '"refs/tags/v1" does not match glob "refs/heads/*"',
    });
    expect(matchCondition('/v[0-9]+/', 'main')).toEqual({
      ok: false,
      message: '"main" does not match regex /v[0-9]+/',
    });
    expect(matchCondition(['a', 'b*'], 'c')).toEqual({
      ok: false,
      message: '"c" matches none of one of ["a", glob "b*"]',
    });
    expect(matchCondition('x', undefined)).toEqual({
      ok: false,
      message: 'the token has no such claim (absent)',
    });
    expect(matchCondition('a', ['a'])).toEqual({
      ok: false,
      message: 'the claim is a list or an object; only strings, numbers and booleans can be matched',
    });
    expect(matchCondition('/(/', 'x')).toEqual({
      ok: false,
      message:
        "the policy's regex /(/ is not a valid regular expression, or cannot be matched in linear time",
    });
  });

  it('never matches a claim value over the length cap, whatever the pattern', () => {
    const long = `refs/heads/${'a'.repeat(MAX_MATCHED_VALUE_CHARS)}`;
    expect(matchCondition('*', long)).toEqual({
      ok: false,
      message: `the claim value is ${long.length} characters; values over ${MAX_MATCHED_VALUE_CHARS} never match`,
    });
    expect(matchCondition('*', 'a'.repeat(MAX_MATCHED_VALUE_CHARS)).ok).toBe(true);
  });

  // ReDoS corpus: classic catastrophic shapes. Each is either refused when the config loads (what a
  // linear-time engine cannot run) or answered in linear time, never by a time budget.
  const REDOS = [
    '(a+)+b',
    '(a|a)*b',
    '(a|aa)+b',
    '(\\w|\\d)+!',
    '(.*a){12}',
    '([a-z]+)*$x',
    '(x+x+)+y',
    '(.*)*z',
  ];
  const REFUSED = ['(a+)\\1', '(?=a+)+b', '(?<=a)b', '(?!x)y', '((a{1,64}){1,64}){1,64}'];

  it('answers catastrophic-backtracking regexes in linear time, with no budget involved', () => {
    for (const source of REDOS) {
      expect(conditionProblem(`/${source}/`), source).toBeNull();
      const evil = `${'a'.repeat(MAX_MATCHED_VALUE_CHARS - 1)}!`;
      const started = performance.now();
      const outcome = matchCondition(`/${source}/`, evil);
      const elapsed = performance.now() - started;
      // the right answer ((\\w|\\d)+! does match), not a budget's
      expect(outcome.ok, source).toBe(source === '(\\w|\\d)+!');
      if (!outcome.ok) expect(outcome.message, source).not.toMatch(/took longer/);
      expect(elapsed, source).toBeLessThan(1000);
    }
    expect(matchCondition('/(a+)+b/', 'aaab').ok).toBe(true);
  });

  it('refuses at config load what cannot run in linear time, naming the pattern', () => {
    for (const source of REFUSED) {
      expect(conditionProblem(`/${source}/`), source).toContain(
        `/${source}/ cannot be matched in linear time`,
      );
      // and at run time it never matches (fail closed)
      expect(matchCondition(`/${source}/`, 'aab').ok, source).toBe(false);
    }
  });

  it('never times out a benign regex while CPU hogs run beside it', async () => {
    const hogs = [0, 1, 2].map(() => spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
    try {
      await new Promise((r) => setTimeout(r, 300));
      const benign = [
        'refs/heads/(main|release/v[0-9]+)',
        '[a-z0-9._-]+(/[a-z0-9._-]+)*',
        'v[0-9]+\\.[0-9]+\\.[0-9]+',
      ];
      const texts = [
        'refs/heads/main',
        'refs/heads/release/v12',
        `${'ab/'.repeat(300)}c`,
        'v1.22.333',
        'nope!',
      ];
      for (let i = 0; i < 3000; i++) {
        const source = benign[i % benign.length]!;
        const text = texts[i % texts.length]!;
        const outcome = matchCondition(`/${source}/`, text);
        expect(new RegExp(`^(?:${source})$`).test(text)).toBe(outcome.ok);
        if (!outcome.ok) expect(outcome.message).not.toMatch(/took longer/);
      }
    } finally {
      for (const h of hogs) h.kill('SIGKILL');
    }
  });

  it('matches adversarial globs in linear-ish time (no regex engine)', () => {
    const text = 'a'.repeat(MAX_MATCHED_VALUE_CHARS);
    const started = performance.now();
    expect(matchCondition('*a*a*a*a*a*a*a*a*a*b', text).ok).toBe(false);
    expect(performance.now() - started).toBeLessThan(200);
  });
});

describe('describeCondition and conditionProblem', () => {
  it('describes each kind', () => {
    expect(describeCondition('main')).toBe('"main"');
    expect(describeCondition(123456)).toBe('"123456"');
    expect(describeCondition(true)).toBe('"true"');
    expect(describeCondition('refs/heads/*')).toBe('glob "refs/heads/*"');
    expect(describeCondition('/v[0-9]+/')).toBe('regex /v[0-9]+/');
    expect(describeCondition(['a', 'b*'])).toBe('one of ["a", glob "b*"]');
  });

  it('flags unusable values for the config validator', () => {
    expect(conditionProblem('main')).toBeNull();
    expect(conditionProblem(['/v[0-9]+/', 'x'])).toBeNull();
    expect(conditionProblem('/(/')).toMatch(/^\/\(\/ is not a valid regular expression: /);
    expect(conditionProblem('/main/i')).toBe(
      '/main/i looks like a regex with flags; flags are not supported (it would be compared as exact text)',
    );
    expect(conditionProblem(Number('12345678901234567890'))).toBe(
      '12345678901234567000 is too large to be exact as a number; quote it as a string',
    );
    expect(conditionProblem(Number.NaN)).toBe('NaN is not a finite number');
  });
});

describe('subjectForms: both GitHub sub formats', () => {
  it('derives the immutable form from a legacy sub and the signed id claims', () => {
    expect(subjectForms(claims)).toEqual([
      'repo:octo-org/octo-repo:ref:refs/heads/main',
      'repo:octo-org@654321/octo-repo@123456:ref:refs/heads/main',
    ]);
  });

  it('derives the legacy form from an immutable sub', () => {
    const immutable = { ...claims, sub: 'repo:octo-org@654321/octo-repo@123456:environment:production' };
    expect(subjectForms(immutable)).toEqual([
      'repo:octo-org@654321/octo-repo@123456:environment:production',
      'repo:octo-org/octo-repo:environment:production',
    ]);
  });

  it('derives nothing for custom subject templates or missing ids', () => {
    expect(subjectForms({ ...claims, sub: 'repository_owner_id:654321:environment:prod' })).toEqual([
      'repository_owner_id:654321:environment:prod',
    ]);
    expect(subjectForms({ ...claims, repository_id: undefined })).toEqual([claims.sub]);
    expect(subjectForms({ ...claims, repository_owner: 'someone-else' })).toEqual([claims.sub]);
    expect(subjectForms({ ...claims, sub: undefined })).toEqual([]);
  });
});

const policy = (name: string, when: Policy['when'], extra: Partial<Policy> = {}): Policy => ({
  name,
  when,
  grants: [{ target: 'orders-db', access: 'read' }],
  ...extra,
});

describe('evaluatePolicies', () => {
  it('picks the first matching policy in config order and explains every other one', () => {
    const policies = [
      policy('prod-deploys', { repository_id: 123456, environment: 'production', ref: 'refs/heads/main' }),
      policy('feature-branches', { repository_id: '123456', ref: 'refs/heads/*', ref_protected: true }),
      policy(
        'also-matches',
        { repository_owner_id: 654321 },
        { grants: [{ target: 'orders-db', access: 'write' }] },
      ),
    ];
    const result = evaluatePolicies(policies, claims, 'github');
    expect(result.matched?.name).toBe('feature-branches');
    expect(result.explanations).toEqual([
      {
        name: 'prod-deploys',
        matched: false,
        failures: [
          {
            policy: 'prod-deploys',
            claim: 'ref',
            expected: 'refs/heads/main',
            actual: 'refs/heads/feature/login-form',
            message:
              'policy "prod-deploys": claim "ref": "refs/heads/feature/login-form" does not equal "refs/heads/main"',
          },
        ],
      },
      {
        name: 'feature-branches',
        matched: true,
        failures: [],
        grants: [{ target: 'orders-db', access: 'read' }],
      },
      {
        name: 'also-matches',
        matched: true,
        failures: [],
        grants: [{ target: 'orders-db', access: 'write' }],
      },
    ]);
  });

  it('lists every failed condition of a policy, with expected and actual', () => {
    const strict = policy('strict', {
      repository_id: 999,
      event_name: ['push', 'workflow_dispatch'],
      job_workflow_ref: '/octo-org\\/workflows\\/\\.github\\/workflows\\/deploy\\.yml@refs\\/tags\\/v2\\..*/',
      environment: 'production',
      deployment: 'blue',
    });
    const { matched, explanations } = evaluatePolicies([strict], claims, 'github');
    expect(matched).toBeNull();
    expect(explanations[0]?.failures).toEqual([
      {
        policy: 'strict',
        claim: 'repository_id',
        expected: '999',
        actual: '123456',
        message: 'policy "strict": claim "repository_id": "123456" does not equal "999"',
      },
      {
        policy: 'strict',
        claim: 'event_name',
        expected: 'one of ["push", "workflow_dispatch"]',
        actual: 'pull_request',
        message:
          'policy "strict": claim "event_name": "pull_request" matches none of one of ["push", "workflow_dispatch"]',
      },
      {
        policy: 'strict',
        claim: 'job_workflow_ref',
        expected: 'regex /octo-org\\/workflows\\/\\.github\\/workflows\\/deploy\\.yml@refs\\/tags\\/v2\\..*/',
        actual: 'octo-org/workflows/.github/workflows/deploy.yml@refs/tags/v1.4.0',
        message:
          'policy "strict": claim "job_workflow_ref": "octo-org/workflows/.github/workflows/deploy.yml@refs/tags/v1.4.0" does not match regex /octo-org\\/workflows\\/\\.github\\/workflows\\/deploy\\.yml@refs\\/tags\\/v2\\..*/',
      },
      {
        policy: 'strict',
        claim: 'deployment',
        expected: 'blue',
        actual: '(absent)',
        message: 'policy "strict": claim "deployment": the token has no such claim (absent)',
      },
    ]);
  });

  it('matches numeric ids and booleans written either way', () => {
    const cases: Policy['when'][] = [
      { repository_id: 123456, repository_owner_id: 654321 },
      { repository_id: '123456', repository_owner_id: '654321' },
      { ref_protected: true },
      { ref_protected: 'true' },
      { numeric_claim: 42 },
      { boolean_claim: false },
    ];
    for (const when of cases) {
      expect(
        evaluatePolicies([policy('p', when)], claims, 'github').matched?.name,
        JSON.stringify(when),
      ).toBe('p');
    }
    expect(evaluatePolicies([policy('p', { ref_protected: false })], claims, 'github').matched).toBeNull();
  });

  it('matches sub in both formats, whichever format the token carries', () => {
    const legacyToken = claims;
    const immutableToken = { ...claims, sub: 'repo:octo-org@654321/octo-repo@123456:ref:refs/heads/main' };
    const conditions = [
      'repo:octo-org/octo-repo:*',
      'repo:octo-org/octo-repo:ref:refs/heads/main',
      'repo:octo-org@654321/octo-repo@123456:*',
      'repo:octo-org@654321/octo-repo@123456:ref:refs/heads/main',
      '/repo:octo-org(@654321)?\\/octo-repo(@123456)?:ref:refs\\/heads\\/main/',
    ];
    for (const token of [legacyToken, immutableToken]) {
      for (const sub of conditions) {
        const result = evaluatePolicies([policy('p', { repository_id: '123456', sub })], token, 'github');
        expect(result.matched?.name, `${sub} vs ${String(token.sub)}`).toBe('p');
      }
    }
  });

  it('does not let a renamed-and-recreated repository match an immutable sub', () => {
    // Same names, different ids: a repository recreated under a recycled name.
    const recycled = { ...claims, repository_id: '777', repository_owner_id: '888' };
    const result = evaluatePolicies(
      [policy('pinned', { sub: 'repo:octo-org@654321/octo-repo@123456:*' })],
      recycled,
      'github',
    );
    expect(result.matched).toBeNull();
    expect(result.explanations[0]?.failures).toEqual([
      {
        policy: 'pinned',
        claim: 'sub',
        expected: 'glob "repo:octo-org@654321/octo-repo@123456:*"',
        actual: 'repo:octo-org/octo-repo:ref:refs/heads/main',
        message:
          'policy "pinned": claim "sub": "repo:octo-org/octo-repo:ref:refs/heads/main" does not match glob "repo:octo-org@654321/octo-repo@123456:*" (also compared as "repo:octo-org@888/octo-repo@777:ref:refs/heads/main")',
      },
    ]);
  });

  it('restricts a policy to its issuer', () => {
    const result = evaluatePolicies(
      [policy('ghes-only', { repository_id: '123456' }, { issuer: 'ghes' })],
      claims,
      'github',
    );
    expect(result.matched).toBeNull();
    expect(result.explanations[0]?.failures).toEqual([
      {
        policy: 'ghes-only',
        claim: 'issuer',
        expected: 'ghes',
        actual: 'github',
        message:
          'policy "ghes-only": only tokens from issuer "ghes" are accepted; this token is from "github"',
      },
    ]);
    expect(
      evaluatePolicies([policy('p', { repository_id: '123456' }, { issuer: 'github' })], claims, 'github')
        .matched?.name,
    ).toBe('p');
  });

  it('never matches a policy without conditions', () => {
    const result = evaluatePolicies([policy('open-door', {})], claims, 'github');
    expect(result.matched).toBeNull();
    expect(result.explanations[0]?.failures[0]?.message).toBe(
      'policy "open-door": has no "when" conditions; a policy must name at least one claim, so it matches nothing',
    );
  });

  it('treats prototype names as absent claims', () => {
    for (const claim of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const result = evaluatePolicies([policy('p', { [claim]: '*' })], claims, 'github');
      expect(result.matched, claim).toBeNull();
      expect(result.explanations[0]?.failures[0]?.actual).toBe('(absent)');
    }
  });

  it('shows long and odd actual values safely', () => {
    const odd = { ...claims, workflow: `evil\n${'x'.repeat(500)}` };
    const failure = evaluatePolicies([policy('p', { workflow: 'CI' })], odd, 'github').explanations[0]
      ?.failures[0];
    expect(failure?.actual).toBe(`evil?${'x'.repeat(195)}… (505 chars)`);
    expect(failure?.message).not.toContain('\n');
  });

  it('returns no match and no explanations for no policies', () => {
    expect(evaluatePolicies([], claims, 'github')).toEqual({ matched: null, explanations: [] });
  });
});
