// Assembles a running broker from a validated config: store, TLS, identity, sessions, HTTP API,
// gateways. One owner for every long-lived resource; close() releases them in reverse order.

import { GitHubAppClient } from './approvals/github/client.js';
import { checkGrantRequirements } from './approvals/github/gates.js';
import { githubApprovals } from './approvals/github/index.js';
import type { ApprovalDecider } from './approvals/types.js';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { Checkpointer, checkpointKeyFromPem, dataDirCheckpointKey } from './audit/checkpoint.js';
import { AuditExporter, replicaName } from './audit/exporter.js';
import { openAuditSinks } from './audit/open-sinks.js';
import { TranscriptRecorder } from './audit/recorder.js';
import { parseRetention, RetentionPruner } from './audit/retention.js';
import { parseDuration } from './config/duration.js';
import { type ConfigError, type ResolvedConfig, withDefaults } from './config/load.js';
import type { Config, TargetKind } from './config/schema.js';
import { resolveAllSecrets } from './config/secrets.js';
import { type Gateway, type GatewayContext, hostForUrl } from './gateways/gateway.js';
import { GATEWAYS } from './gateways/registry.js';
import { createVerifier } from './identity/verify.js';
import { createLogger, type Logger } from './log.js';
import { type BrokerMetrics, createMetrics } from './metrics.js';
import { type ConnectionInfo, SessionService } from './sessions/service.js';
import { openStore } from './store/open.js';
import type { Store } from './store/store.js';
import { storeRateLimit } from './api/rate-store.js';
import { ReplicaCoordinator } from './replicas.js';
import { ApprovalService } from './approvals/service.js';
import { notificationChannels } from './approvals/notify.js';
import { ensureBrokerTls } from './tls/ca.js';
import { loadConfiguredTls } from './tls/configured.js';
import { brokerHostnames } from './tls/hostnames.js';

export class BrokerStartError extends Error {
  constructor(
    message: string,
    readonly errors: ConfigError[] = [],
  ) {
    super(message);
  }
}

export interface Broker {
  config: ResolvedConfig;
  /** http(s)://host:port of the API */
  url: string;
  httpPort: number;
  pgPort: number | null;
  sshPort: number | null;
  /** the Kubernetes gateway's HTTPS port (listen.kubernetes) */
  k8sPort: number | null;
  /** the host clients are told to connect to (listen.postgres.public_host, public_url's host, the listen host) */
  pgHost: string;
  /** where the CA clients verify the gateways with is on disk: tls.ca_file, or the generated data_dir/tls/ca.pem; null when none */
  caFile: string | null;
  /** PEM of the CA that signed the gateway certificate (absent when a configured cert is publicly trusted) */
  caPem: string | undefined;
  store: Store;
  sessions: SessionService;
  approvals: ApprovalService;
  exporter: AuditExporter;
  checkpointer: Checkpointer;
  /** null without `retention` in the config */
  retention: RetentionPruner | null;
  checkpointKey: { keyId: string; publicKeyPem: string };
  /** this process among the replicas sharing the store */
  replica: string;
  metrics: BrokerMetrics;
  app: FastifyInstance;
  close(): Promise<void>;
  /**
   * Graceful shutdown (SIGTERM): /readyz turns 503, the gateways stop accepting and wait up to
   * `graceMs` for their clients to finish, then everything closes (connections still open get the
   * gateway's shutdown error, recorded as closed by "broker shutdown").
   */
  shutdown(graceMs: number): Promise<void>;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** used to map secret-resolution errors to YAML lines */
  locate?: (path: string) => { line: number; column: number };
  now?: () => Date;
  /** decides approval holds (the approvals service); with github_app's key, GitHub deliveries reach it */
  approvalDecider?: ApprovalDecider;
}

/** The App's API client, when github_app has app_id and private_key (approvals, gates, migrations). */
export function githubAppClient(
  config: Config,
  secrets: ReadonlyMap<string, string>,
): GitHubAppClient | null {
  const app = config.github_app;
  const privateKey = secrets.get('github_app.private_key');
  if (app?.app_id === undefined || privateKey === undefined) return null;
  return new GitHubAppClient({
    appId: app.app_id,
    privateKey,
    apiUrl: app.api_url,
    installationId: app.installation_id,
  });
}

export async function startBroker(raw: Config, opts: StartOptions = {}): Promise<Broker> {
  const config = withDefaults(raw);
  const logger = opts.logger ?? createLogger(config.log.level);
  const resolved = await resolveAllSecrets(raw, opts.env ?? process.env, opts.locate);
  if (!resolved.ok) throw new BrokerStartError('secrets could not be resolved', resolved.errors);
  const secrets = resolved.secrets;
  const tlsLoaded = await loadConfiguredTls(raw, { ...(opts.locate ? { locate: opts.locate } : {}) });
  if (!tlsLoaded.ok) throw new BrokerStartError('TLS material could not be loaded', tlsLoaded.errors);
  const targetCas = new Map<string, string>();
  for (const t of config.targets) {
    const caFile = t.kind === 'postgres' ? t.tls.ca_file : t.kind === 'kubernetes' ? t.ca_file : undefined;
    if (!caFile) continue;
    try {
      targetCas.set(t.name, await readFile(caFile, 'utf8'));
    } catch (err) {
      throw new BrokerStartError(
        `targets: cannot read ca_file of target ${t.name}: ${(err as Error).message}`,
      );
    }
  }

  const closers: (() => Promise<void> | void)[] = [];
  let closing: Promise<void> | null = null;
  const close = () => (closing ??= closeAll());
  const closeAll = async () => {
    for (const fn of closers.reverse()) {
      try {
        await fn();
      } catch (err) {
        logger.error({ err }, 'error while closing');
      }
    }
  };
  try {
    const metrics = createMetrics({ defaultMetrics: true });
    const storeUrl = typeof config.store?.url === 'string' ? config.store.url : secrets.get('store.url');
    const store = await openStore({ ...(storeUrl ? { url: storeUrl } : {}), dataDir: config.data_dir });
    closers.push(() => store.close());

    const publicHost = advertisedHost(config);
    const tls = tlsLoaded.tls
      ? { ...tlsLoaded.tls, caPem: tlsLoaded.tls.caPem ?? undefined }
      : await ensureBrokerTls(config.data_dir, brokerHostnames(config), new Date());

    // Replicas on one store must hand out the same CA (or certificate): a session opened on one replica
    // is used against any other's gateway. The first replica records the fingerprint; the others compare.
    if (store.kind === 'postgres') {
      const fingerprint = createHash('sha256')
        .update(tls.caPem ?? tls.certPem)
        .digest('hex');
      const shared = await store.settleSetting('tls.ca_fingerprint', fingerprint);
      if (shared !== fingerprint)
        throw new BrokerStartError(
          `tls: the replicas sharing this store hand out CA ${shared.slice(0, 16)}…, this one ${fingerprint.slice(0, 16)}…: ` +
            'give every replica the same certificate by reference (tls.cert_file, key_file, ca_file from one Secret)',
        );
    }

    const verifier = createVerifier(config.issuers, {
      maxTokenBytes: config.limits.max_token_bytes,
      clockSkewSeconds: Math.round(config.limits.clock_skew_ms / 1000),
    });
    const recorder = new TranscriptRecorder(store, logger);
    closers.push(() => recorder.close());

    const replica = replicaName();
    const checkpointKeyPem = secrets.get('audit.checkpoint.key');
    const checkpointKey = checkpointKeyPem
      ? checkpointKeyFromPem(checkpointKeyPem)
      : await dataDirCheckpointKey(config.data_dir);
    const checkpointer = new Checkpointer({
      store,
      key: checkpointKey,
      logger: logger.child({ component: 'checkpoint' }),
      holder: replica,
      intervalMs: parseDuration(config.audit?.checkpoint?.interval ?? '5m') ?? 300_000,
      registry: metrics.registry,
    });
    checkpointer.start();
    closers.push(() => checkpointer.close());

    const exportSinks = await openAuditSinks(config, secrets, logger);
    const exporter = new AuditExporter({
      holder: replica,
      store,
      sinks: exportSinks,
      logger: logger.child({ component: 'audit-export' }),
      registry: metrics.registry,
      ...(config.audit?.export_interval
        ? { intervalMs: parseDuration(config.audit.export_interval) ?? 1000 }
        : {}),
    });
    exporter.start();
    closers.push(() => exporter.close());

    let retention: RetentionPruner | null = null;
    if (config.retention) {
      retention = new RetentionPruner({
        store,
        retentionMs: parseRetention(config.retention)!,
        sinks: (config.audit?.export ?? []).map((s) => s.name),
        logger: logger.child({ component: 'retention' }),
        registry: metrics.registry,
      });
      retention.start();
      const r = retention;
      closers.push(() => r.close());
    }

    // Every kind's gateway (gateways/registry.ts); a session's answer says how to reach each target
    // through the gateway of its kind (none: the broker runs no gateway of that kind).
    const gateways = new Map<TargetKind, Gateway>();
    const connectionInfo: ConnectionInfo = (target, session) =>
      gateways.get(target.kind)?.connectionInfo(target, session);
    const adminTokens = new Map<string, string>();
    config.admin.tokens.forEach((t, i) => {
      adminTokens.set(t.name, secrets.get(`admin.tokens[${i}].token`)!);
    });

    const github = githubAppClient(raw, secrets);
    // built below, once the approvals service exists; sessions open only after that
    let gh: ReturnType<typeof githubApprovals> | null = null;
    const sessions = new SessionService({
      grantRequirements: github
        ? async (grants, claims) => {
            const gate = await checkGrantRequirements(github, grants, claims);
            if (!gate.ok || !grants.some((g) => g.migrations)) return gate;
            if (!gh) return { ok: false, reasons: [{ message: 'the GitHub App is not ready yet' }] };
            // the reviewed migration files, read now: a failed read refuses the session
            try {
              const read = await gh.migrations.preload(grants, claims);
              return { ...gate, evidence: [...gate.evidence, ...read.evidence] };
            } catch (err) {
              return { ok: false, reasons: [{ message: (err as Error).message }] };
            }
          }
        : undefined,
      config,
      store,
      recorder,
      verifier,
      logger,
      metrics,
      adminTokens,
      connectionInfo,
      caPem: tls.caPem,
      ...(opts.now ? { now: opts.now } : {}),
    });
    await sessions.init();
    sessions.startSweeper();
    closers.push(() => sessions.close());

    // Holds of every gateway wait here; links point at the API once it listens (url below).
    let brokerUrl = config.public_url ?? '';
    const approvals = new ApprovalService({
      store,
      record: (sessionId, event) => recorder.record(sessionId, event),
      logger: logger.child({ component: 'approvals' }),
      publicUrl: () => brokerUrl,
      channels: notificationChannels(config, secrets, logger.child({ component: 'approvals-notify' })),
    });
    closers.push(() => approvals.close());
    // with the GitHub App: check runs with Approve/Deny on the job's commit, their webhooks, and
    // statements of the reviewed migration files passing without a human (an Approver decorator)
    gh = github
      ? githubApprovals({
          client: github,
          decider: opts.approvalDecider ?? approvals,
          approver: approvals,
          store,
          logger,
        })
      : null;
    if (gh) approvals.addChannel(gh.channel);

    const replicas = new ReplicaCoordinator({
      onApprovalChanged: (id) => approvals.changed(id),
      store,
      replica,
      logger: logger.child({ component: 'replicas' }),
      events: sessions.events,
      record: (sessionId, event) => recorder.record(sessionId, event),
      listenUrl: store.kind === 'postgres' ? storeUrl : undefined,
      ...(config.replicas?.heartbeat ? { heartbeatMs: parseDuration(config.replicas.heartbeat)! } : {}),
      ...(config.replicas?.revocation_sweep
        ? { sweepMs: parseDuration(config.replicas.revocation_sweep)! }
        : {}),
      registry: metrics.registry,
    });
    await replicas.start();
    closers.push(() => replicas.close());

    const gatewayContext: GatewayContext = {
      config,
      logger,
      tls: { certPem: tls.certPem, keyPem: tls.keyPem },
      secrets,
      targetCas,
      publicHost: gatewayHost(config),
      sessions: {
        getSession: (id) => store.getSession(id),
        now: () => sessions.now,
        events: sessions.events,
      },
      // every gateway event passes the replica coordinator, which notes connections opening and closing
      recorder: {
        record: (sessionId, event, opts) => {
          replicas.track(sessionId, event);
          return recorder.record(sessionId, event, opts);
        },
        recordBackground: (sessionId, event, done) => {
          replicas.track(sessionId, event);
          recorder.recordBackground(sessionId, event, done);
        },
      },
      recordings: { append: (sessionId, chunks) => store.appendRecordingChunks(sessionId, chunks) },
      metrics,
      approver: gh?.approver ?? approvals,
    };
    for (const kind of Object.keys(GATEWAYS) as TargetKind[]) {
      const gateway = GATEWAYS[kind](gatewayContext);
      if (!gateway) continue;
      await gateway.start();
      // a Gateway<K> serves targets of its own kind only; the map is read by target.kind
      gateways.set(kind, gateway as Gateway);
      closers.push(() => gateway.close());
    }
    const pgPort = gateways.get('postgres')?.port() ?? null;
    const sshPort = gateways.get('ssh')?.port() ?? null;
    const k8sPort = gateways.get('kubernetes')?.port() ?? null;

    let draining = false;
    const app = await buildApp({
      githubApprovals: gh?.webhooks,
      draining: () => draining,
      githubWebhookSecret: secrets.get('github_app.webhook_secret'),
      sessions,
      store,
      approvals,
      approverTokens: approverTokens(config, secrets),
      rateLimitStore: store.kind === 'postgres' ? storeRateLimit(store) : undefined,
      checkpointKey: { keyId: checkpointKey.keyId, publicKeyPem: checkpointKey.publicKeyPem },
      metrics,
      logger,
      rateLimitPerMinute: config.limits.session_rate_per_minute,
      https: config.http_tls ? { key: tls.keyPem, cert: tls.certPem } : undefined,
    });
    closers.push(() => app.close());
    await app.listen({ host: config.listen.http.host, port: config.listen.http.port });
    const httpPort = (app.server.address() as AddressInfo).port;
    const url =
      config.public_url ?? `${config.http_tls ? 'https' : 'http'}://${hostForUrl(publicHost)}:${httpPort}`;
    brokerUrl = url;
    logger.info({ url, postgres: pgPort, ssh: sshPort, store: store.kind }, 'broker listening');
    return {
      config,
      url,
      httpPort,
      pgPort,
      sshPort,
      k8sPort,
      pgHost: config.listen.postgres?.public_host ?? gatewayHost(config),
      caFile: tlsLoaded.tls ? (config.tls?.ca_file ?? null) : join(config.data_dir, 'tls', 'ca.pem'),
      caPem: tls.caPem,
      store,
      sessions,
      approvals,
      exporter,
      checkpointer,
      retention,
      checkpointKey: { keyId: checkpointKey.keyId, publicKeyPem: checkpointKey.publicKeyPem },
      replica,
      metrics,
      app,
      close,
      shutdown: async (graceMs: number) => {
        draining = true;
        const deadline = Date.now() + graceMs;
        const open = () => {
          let n = 0;
          for (const g of gateways.values())
            n += (g as { connectionCount?: () => number }).connectionCount?.() ?? 0;
          return n;
        };
        logger.info(
          { grace_ms: graceMs },
          'shutting down: not accepting connections, waiting for clients to finish',
        );
        await Promise.all([...gateways.values()].map((g) => g.drain?.(deadline)));
        logger.info(
          { waited_ms: graceMs - Math.max(0, deadline - Date.now()), still_open: open() },
          'shutting down: closing',
        );
        await close();
      },
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The broker's own URL host when public_url is not set: postgres.public_host if set (as before
 * gateways were looped over by kind), else the gateways' host.
 */
function advertisedHost(config: ResolvedConfig): string {
  return config.listen.postgres?.public_host ?? gatewayHost(config);
}

/** The host gateways tell clients to connect to (a gateway may have its own, like postgres.public_host). */
function gatewayHost(config: ResolvedConfig): string {
  if (config.public_url) return new URL(config.public_url).hostname.replace(/^\[|\]$/g, '');
  const h = config.listen.http.host;
  return h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h;
}

/** approvals.approver_tokens with their resolved values (the API keeps only their hashes). */
function approverTokens(
  config: ResolvedConfig,
  secrets: ReadonlyMap<string, string>,
): { name: string; token: string; github_login?: string }[] {
  return (config.approvals?.approver_tokens ?? []).map((t, i) => ({
    name: t.name,
    token: secrets.get(`approvals.approver_tokens[${i}].token`)!,
    ...(t.github_login ? { github_login: t.github_login } : {}),
  }));
}
