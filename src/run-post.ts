// The post step (runs even when the job failed): revoke the session, fetch its transcript, write the
// job summary and the check run, delete the session's files. Reporting problems become warnings; the
// step fails only when `fail-on-denied` is set and something was denied.
import { rmSync } from 'node:fs';
import { basename } from 'node:path';
import * as core from '@actions/core';
import { getOctokit } from '@actions/github';
import type { Transcript } from '../service/api/schemas.js';
import type { ActionsCore, Env } from './actions-core.js';
import {
  BrokerClient,
  type BrokerFailure,
  describeFailure,
  type RetryPolicy,
  withRetry,
} from './broker-client.js';
import { readEventPayload, runContext } from './github-context.js';
import { envInputReader, parseReportingInputs, type ReportingInputs } from './inputs.js';
import { type ChecksApi, checkRunRequest, createCheckRun } from './report/check-run.js';
import { type ReportInput, type RevokeReport, renderJobSummary, transcriptStats } from './report/summary.js';
import { decodeSavedSession, STATE_SECRET, STATE_SESSION } from './state.js';

export interface PostDeps {
  core: ActionsCore;
  env: Env;
  writeSummary: (markdown: string) => Promise<void>;
  checksApi: (token: string, baseUrl: string) => ChecksApi;
  now?: () => Date;
  revokeRetry?: RetryPolicy;
  transcriptRetry?: RetryPolicy;
  /** per-request deadline for broker calls (default 20 s) */
  requestTimeoutMs?: number;
}

/** Entry point used by dist/post.js. */
export async function run(): Promise<void> {
  await runPost({
    core,
    env: process.env,
    writeSummary: async (markdown) => {
      await core.summary.addRaw(markdown).write();
    },
    checksApi: (token, baseUrl) => getOctokit(token, { baseUrl }),
  });
}

function transcriptProblem(f: BrokerFailure): string {
  if (f.kind === 'http' && f.status === 401)
    return `the broker no longer accepts this session's secret (${describeFailure(f)})`;
  if (f.kind === 'http' && f.status === 404)
    return `the broker does not know this session (${describeFailure(f)})`;
  return describeFailure(f);
}

function removeSessionDir(dir: string | null, c: ActionsCore): void {
  // Only ever a directory main created (RUNNER_TEMP/hoop-XXXXXX).
  if (!dir || !/^hoop-[A-Za-z0-9]{6}$/.test(basename(dir))) return;
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch (e) {
    c.warning(`hoop: could not delete ${dir}: ${(e as Error).message}`);
  }
}

export async function runPost(deps: PostDeps): Promise<void> {
  try {
    await report(deps);
  } catch (e) {
    // Reporting must never fail the job by accident.
    deps.core.warning(`hoop: the post step hit an unexpected error: ${(e as Error).message ?? String(e)}`);
  }
}

async function report(deps: PostDeps): Promise<void> {
  const { core: c, env } = deps;
  const secret = c.getState(STATE_SECRET);
  const saved = decodeSavedSession(c.getState(STATE_SESSION));
  if (!saved || !secret) {
    c.info('hoop: no session was opened in this job, so there is nothing to report or revoke.');
    return;
  }
  c.setSecret(secret);

  const parsed = parseReportingInputs(envInputReader(env));
  let reporting: ReportingInputs = { githubToken: '', jobSummary: true, checkRun: true, failOnDenied: false };
  if (parsed.ok) reporting = parsed.value;
  else c.warning(`hoop: ${parsed.errors.join('; ')}; using the defaults`);
  if (reporting.githubToken) c.setSecret(reporting.githubToken);

  const client = new BrokerClient({
    baseUrl: saved.brokerUrl,
    caPem: saved.caCertPem ?? undefined,
    timeoutMs: deps.requestTimeoutMs ?? 20_000,
  });

  // Revoke first: the transcript read afterwards is final (no operation can follow its last hash),
  // and the broker serves a session's transcript to its secret after revocation too.
  const revoked = await client.revoke(
    saved.id,
    secret,
    deps.revokeRetry ?? { attempts: 4, baseDelayMs: 500 },
  );
  let revoke: RevokeReport;
  if (revoked.ok) {
    revoke = { ok: true, state: revoked.value, attempts: revoked.attempts };
    c.info(
      `hoop: session ${saved.id} ${revoked.value === 'revoked' ? 'revoked' : `was already ${revoked.value}`}`,
    );
  } else {
    revoke = { ok: false, message: describeFailure(revoked.failure), attempts: revoked.attempts };
    c.warning(
      `hoop: could not revoke session ${saved.id} (${revoked.attempts} attempt${revoked.attempts === 1 ? '' : 's'}): ${describeFailure(revoked.failure)}. It stays usable until ${saved.expiresAt}.`,
    );
  }

  // Retrying the read is only worth it when the broker answered the revoke at all.
  const transcriptRetry = deps.transcriptRetry ?? { attempts: 3, baseDelayMs: 500 };
  const brokerDown = !revoked.ok && revoked.failure.kind === 'unreachable';
  const fetched = await withRetry(brokerDown ? { ...transcriptRetry, attempts: 1 } : transcriptRetry, () =>
    client.transcript(saved.id, secret),
  );
  let transcript: Transcript | null = null;
  let problem: string | null = null;
  if (fetched.ok) transcript = fetched.value;
  else {
    problem = transcriptProblem(fetched.failure);
    c.warning(`hoop: the transcript of session ${saved.id} could not be fetched: ${problem}`);
  }

  const run = runContext(env, readEventPayload(env));
  const input: ReportInput = {
    session: {
      id: saved.id,
      expiresAt: saved.expiresAt,
      policy: saved.policy,
      identity: saved.identity,
      targets: saved.targets,
    },
    transcript,
    transcriptProblem: problem,
    revoke,
    run,
  };
  const stats = transcript ? transcriptStats(transcript.events) : null;
  if (stats) {
    c.info(
      `hoop: ${stats.events} events: ${stats.allowed} allowed, ${stats.denied} denied, ${stats.held} held`,
    );
    if (!transcript?.chain_verified)
      c.warning("hoop: the broker could not verify the transcript's hash chain");
  }

  if (reporting.jobSummary) {
    try {
      await deps.writeSummary(renderJobSummary(input));
    } catch (e) {
      c.warning(`hoop: could not write the job summary: ${(e as Error).message}`);
    }
  }

  if (reporting.checkRun) {
    if (!reporting.githubToken)
      c.warning('hoop: check-run is on but github-token is empty; no check run created');
    else if (!run.owner || !run.repo || !run.headSha)
      c.warning('hoop: GITHUB_REPOSITORY or GITHUB_SHA is missing; no check run created');
    else {
      const req = checkRunRequest(input, {
        failOnDenied: reporting.failOnDenied,
        now: (deps.now ?? (() => new Date()))(),
      });
      const created = await createCheckRun(deps.checksApi(reporting.githubToken, run.apiUrl), req);
      if (created.ok)
        c.info(`hoop: check run "${req.name}" (${req.conclusion})${created.url ? `: ${created.url}` : ''}`);
      else c.warning(`hoop: could not create the check run: ${created.message}`);
    }
  }

  removeSessionDir(saved.dir, c);

  if (reporting.failOnDenied && stats && stats.denied > 0)
    c.setFailed(
      `hoop: ${stats.denied} operation${stats.denied === 1 ? ' was' : 's were'} denied (fail-on-denied: true); see the job summary`,
    );
}
