// approve: rules through the real broker, real sshd and the real ssh client, decided by a human
// approver over the HTTP API (POST /v1/approvals/:id with an approver token): the held command runs
// on the server only once approved (checked by the file it writes there); denied or timed out, the
// client gets a clear error, a non-zero exit, and the command never ran.
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pendingApproval } from '../../fixtures/approvals.js';
import { type SshHarness, startSshHarness } from './harness.js';

const ALICE = 'alice-approver-token-0123456789abcdef';
let h: SshHarness;

beforeAll(async () => {
  h = await startSshHarness({
    grants: () => ({
      push: {
        access: 'write',
        ssh: { commands: { approve: ['touch *'] } },
        approvers: { users: ['alice'] },
      },
      schedule: {
        access: 'write',
        ssh: { commands: { approve: ['touch *'] } },
        approvers: { users: ['alice'] },
        approval_timeout: '2s',
      },
    }),
    approvals: {
      config: {
        approver_tokens: [{ name: 'alice', token: { env: 'SSH_APPROVER_ALICE' }, github_login: 'alice' }],
      },
      env: { SSH_APPROVER_ALICE: ALICE },
    },
  });
}, 120_000);

afterAll(async () => {
  await h?.close();
});

async function decide(id: string, decision: 'approve' | 'deny', reason?: string): Promise<number> {
  const r = await fetch(`${h.broker.url}/v1/approvals/${id}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ALICE}`, 'content-type': 'application/json' },
    body: JSON.stringify({ decision, ...(reason ? { reason } : {}) }),
  });
  return r.status;
}

describe('ssh approve rules, decided by an approver over the API', () => {
  it('holds the command until approved, then runs it on the server', async () => {
    const job = await h.open('push');
    const marker = `${h.home}/approved-marker`;
    const run = job.ssh(['build-host', `touch ${marker}`], { timeoutMs: 60_000 });
    const a = await pendingApproval(h.broker.broker, job.created.id);
    expect(a).toMatchObject({ operation_kind: 'ssh.exec', summary: `touch ${marker}` });
    await new Promise((r) => setTimeout(r, 300));
    expect(existsSync(marker)).toBe(false); // held: not run
    expect(await decide(a.id, 'approve', 'reviewed')).toBe(200);
    const r = await run;
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`hoop: held for approval ${a.id} until`);
    expect(existsSync(marker)).toBe(true);
  }, 90_000);

  it('denied: a clear error, a non-zero exit, and nothing ran', async () => {
    const job = await h.open('push');
    const marker = `${h.home}/denied-marker`;
    const run = job.ssh(['build-host', `touch ${marker}`], { timeoutMs: 60_000 });
    const a = await pendingApproval(h.broker.broker, job.created.id);
    expect(await decide(a.id, 'deny', 'not now')).toBe(200);
    const r = await run;
    expect(r.code).toBe(126);
    expect(r.stderr).toContain(`approval ${a.id} denied`);
    expect(r.stderr).toContain('not now');
    expect(existsSync(marker)).toBe(false);
  }, 90_000);

  it('timed out: a clear error, a non-zero exit, and nothing ran', async () => {
    const job = await h.open('schedule');
    const marker = `${h.home}/timeout-marker`;
    const r = await job.ssh(['build-host', `touch ${marker}`], { timeoutMs: 60_000 });
    expect(r.code).toBe(126);
    expect(r.stderr).toMatch(/hoop: held for approval \S+ until/);
    expect(r.stderr).toMatch(/tim(ed|e) ?out|expired/i);
    expect(existsSync(marker)).toBe(false);
  }, 90_000);

  it('revoked while held: the connection closes and nothing ran', async () => {
    const job = await h.open('push');
    const marker = `${h.home}/revoked-marker`;
    const run = job.ssh(['build-host', `touch ${marker}`], { timeoutMs: 60_000 });
    const a = await pendingApproval(h.broker.broker, job.created.id);
    await job.revoke();
    const r = await run;
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`hoop: session ${job.created.id} was revoked`);
    // approving afterwards runs nothing
    await decide(a.id, 'approve');
    await new Promise((res) => setTimeout(res, 500));
    expect(existsSync(marker)).toBe(false);
  }, 90_000);
});
