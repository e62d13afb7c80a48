// The example workflows (README, examples/, .github/workflows/example.yml) use the action as declared.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT } from '../fixtures/actions-runner.js';

interface Step {
  uses?: string;
  with?: Record<string, unknown>;
}
interface Job {
  permissions?: Record<string, string>;
  steps: Step[];
}

const inputs = Object.keys(
  (parseYaml(readFileSync(join(REPO_ROOT, 'action.yml'), 'utf8')) as { inputs: Record<string, unknown> })
    .inputs,
);
const workflows = [
  ...readdirSync(join(REPO_ROOT, 'examples/workflows')).map((f) => join('examples/workflows', f)),
  '.github/workflows/example.yml',
];

describe('example workflows', () => {
  it.each(workflows)('%s passes only declared inputs and grants id-token: write', (file) => {
    const wf = parseYaml(readFileSync(join(REPO_ROOT, file), 'utf8')) as { jobs: Record<string, Job> };
    let uses = 0;
    for (const job of Object.values(wf.jobs)) {
      const steps = job.steps.filter((s) => s.uses === './' || s.uses?.startsWith('org/hoop-action@'));
      if (steps.length === 0) continue;
      expect(job.permissions?.['id-token']).toBe('write');
      expect(job.permissions?.checks).toBe('write');
      for (const step of steps) {
        uses++;
        expect(step.with?.['broker-url']).toBeTruthy();
        for (const name of Object.keys(step.with ?? {})) expect(inputs).toContain(name);
      }
    }
    expect(uses).toBeGreaterThan(0);
  });
});
