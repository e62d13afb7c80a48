// The Kubernetes gateway: an HTTPS endpoint of its own (listen.kubernetes) serving
// /k8s/<target>/<session id>/… with the broker's certificate. Each request goes through the shared
// core: the session guard (bearer token = the session secret, the session id from the path → the
// live session → its grant), the request attributes and the policy, the operation flow (a hold goes
// to the approver; a refusal is recorded durably, then answered as a Kubernetes Status 403; an
// allowed request is recorded when it completes). Allowed requests go to the target's API server
// with the broker's credentials for it. Responses that can hold Secret values are read and masked
// (watch streams event by event, logs line by line); exec, attach and port-forward upgrades are
// relayed (upgrades.ts). Every live request and stream is registered with the guard, which closes
// it when the session is revoked or expires.
// Size (just over 600 lines): admission (guard, attributes, impersonation, policy, flow) and the
// plain-request path share the Admitted state; streams and upgrades are already in their own files.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Settle } from '../../audit/recorder.js';
import type { BrokerEvent } from '../../audit/event.js';
import type { K8sStreamOutcome, OperationOutcome } from '../../audit/operation-events.js';
import type { Grant } from '../../config/schema.js';
import type { Decision } from '../../policy/decision.js';
import {
  acceptWithoutProtobuf,
  type MaskContext,
  maskObject,
  needsMasking,
} from '../../policy/kubernetes/mask.js';
import {
  type KubernetesRequestInfo,
  policyVerb,
  resolveRequestInfo,
} from '../../policy/kubernetes/request-info.js';
import { decide } from '../../policy/decide.js';
import { describeRequest, grantDetectors } from '../../policy/kubernetes/rules.js';
import { maskText } from '../../policy/mask/detectors.js';
import type { K8sRequestOperation } from '../../policy/operation.js';
import type { SessionRecord } from '../../sessions/types.js';
import { type Approver, holdsUnsupported, OperationFlow } from '../operation-flow.js';
import { type ConnectionEnd, SessionGuard, type SessionGuardDeps } from '../session-guard.js';
import { readAccessReview, reviewAnswer } from './access-review.js';
import { sendStatus, sendStatusOnSocket } from './status.js';
import { LineTransform } from './streams.js';
import { relayUpgrade } from './upgrades.js';
import {
  impersonation,
  isImpersonationHeader,
  type KubernetesUpstream,
  upstreamHeaders,
  upstreamUrl,
} from './upstream.js';

/** A response the broker must read to mask is held in memory up to this size. */
export const MAX_MASKED_BODY_BYTES = 64 * 1024 * 1024;
/** Request bodies the broker reads (access reviews). */
const MAX_REVIEW_BODY_BYTES = 1024 * 1024;
/** Live streams (watches, log follows, exec, port-forwards) per session and target, unless the target says. */
export const DEFAULT_MAX_STREAMS = 32;
/** The subresources whose requests may upgrade (WebSocket, SPDY). */
const UPGRADABLE = ['exec', 'attach', 'portforward', 'proxy'];
/** How long a session read from the store answers for it (see startKubernetesGateway). */
export const SESSION_CACHE_MS = 5_000;

export interface KubernetesGatewayDeps extends SessionGuardDeps {
  logger: Logger;
  tls: { certPem: string; keyPem: string };
  targets: ReadonlyMap<string, KubernetesUpstream>;
  /** append to a session's transcript: durably (resolves when durable), or in the background */
  record(sessionId: string, event: BrokerEvent): Promise<unknown>;
  recordBackground(sessionId: string, event: BrokerEvent, done: Settle): void;
  /** holds (approve rules); default: refused, saying approvals are not supported */
  approver?: Approver;
}

export interface KubernetesGateway {
  port: number;
  server: Server;
  /** live requests and streams registered with the guard (all sessions, or one) */
  liveCount(sessionId?: string): number;
  close(): Promise<void>;
}

const ROUTE = /^\/k8s\/([a-z0-9][a-z0-9_-]*)\/([^/]+)(\/.*)?$/;

/** A request the gateway admitted: its session, grant, upstream, attributes and flow. */
export interface Admitted {
  target: string;
  apiPath: string;
  url: URL;
  session: SessionRecord;
  grant: Grant;
  maxStreams: number;
  upstream: KubernetesUpstream;
  info: KubernetesRequestInfo;
  op: K8sRequestOperation;
  flow: OperationFlow;
  imp: { user: string; groups: string[] } | null;
}

type Admission = { ok: true; a: Admitted } | { ok: false; code: number; message: string };

const bearerOf = (req: IncomingMessage): string | undefined => {
  const h = req.headers.authorization;
  return h && /^bearer /i.test(h) ? h.slice(7).trim() : undefined;
};

/** The operation a `kubectl auth can-i` review asks about (answered by the policy, never sent). */
function reviewOperation(info: KubernetesRequestInfo): K8sRequestOperation {
  if (!info.resourceRequest) return { kind: 'k8s.request', verb: info.verb, apiGroup: '', path: info.path };
  return {
    kind: 'k8s.request',
    verb: policyVerb(info),
    apiGroup: info.apiGroup,
    resource: info.resource,
    path: '',
    ...(info.subresource ? { subresource: info.subresource } : {}),
    ...(info.namespace ? { namespace: info.namespace } : {}),
    ...(info.name ? { name: info.name } : {}),
  };
}

export function operationOf(info: KubernetesRequestInfo, apiPath: string, url: URL): K8sRequestOperation {
  if (!info.resourceRequest) return { kind: 'k8s.request', verb: info.verb, apiGroup: '', path: apiPath };
  const op: K8sRequestOperation = {
    kind: 'k8s.request',
    verb: policyVerb(info),
    apiGroup: info.apiGroup,
    apiVersion: info.apiVersion,
    resource: info.resource,
    path: apiPath,
  };
  if (info.subresource) op.subresource = info.subresource;
  if (info.namespace) op.namespace = info.namespace;
  if (info.name) op.name = info.name;
  if (info.subresource === 'exec') op.command = url.searchParams.getAll('command');
  const container = url.searchParams.get('container');
  if (container && ['exec', 'attach', 'log'].includes(info.subresource)) op.container = container;
  if (info.subresource === 'exec' || info.subresource === 'attach') {
    const tty = url.searchParams.get('tty');
    op.tty = tty === 'true' || tty === '1';
  }
  if (info.subresource === 'portforward') {
    const ports = url.searchParams
      .getAll('ports')
      .flatMap((p) => p.split(','))
      .map((p) => Number.parseInt(p, 10))
      .filter((n) => Number.isInteger(n));
    if (ports.length) op.ports = ports;
  }
  return op;
}

/** The message of a refusal, for the client: the reasons, prefixed so it reads as the broker's. */
export const refusalMessage = (d: Pick<Decision, 'reasons'>): string =>
  `hoop: ${d.reasons.join('; ') || 'denied'}`;

export async function startKubernetesGateway(
  deps: KubernetesGatewayDeps,
  listen: { host?: string | undefined; port: number },
): Promise<KubernetesGateway> {
  const log = deps.logger;
  // kubectl makes many short requests: a session read from the store is kept for SESSION_CACHE_MS
  // (dropped at once when this broker ends it; another replica's revocation is seen within that time)
  const cache = new Map<string, { session: SessionRecord; at: number }>();
  const onEnded = (e: { id: string }) => cache.delete(e.id);
  deps.sessionEvents.on('ended', onEnded);
  const guard = new SessionGuard({
    now: deps.now,
    sessionEvents: deps.sessionEvents,
    getSession: async (id) => {
      const hit = cache.get(id);
      const t = Date.now();
      if (hit && t - hit.at < SESSION_CACHE_MS) return hit.session;
      const session = await deps.getSession(id);
      if (session && !session.ended_at) {
        if (cache.size >= 10_000) cache.delete(cache.keys().next().value!);
        cache.set(id, { session, at: t });
      } else cache.delete(id);
      return session;
    },
  });
  const approver = deps.approver ?? holdsUnsupported('the Kubernetes gateway');
  const server = createServer({ cert: deps.tls.certPem, key: deps.tls.keyPem });
  const connIds = new WeakMap<object, string>();
  let nextConn = 0;
  const connIdOf = (req: IncomingMessage): string => {
    let id = connIds.get(req.socket);
    if (!id) {
      id = `k8s-${(++nextConn).toString(36)}`;
      connIds.set(req.socket, id);
    }
    return id;
  };

  /** Route, session, grant, attributes, impersonation; then the policy (holds settled). */
  async function admit(req: IncomingMessage): Promise<Admission> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'https://gateway.invalid');
    } catch {
      return { ok: false, code: 400, message: 'hoop: the request URL cannot be read' };
    }
    const m = ROUTE.exec(url.pathname);
    if (!m)
      return {
        ok: false,
        code: 404,
        message:
          'hoop: not a Kubernetes gateway path (use the server URL of the kubeconfig the action wrote)',
      };
    const [, target, sessionId, apiPath = '/'] = m as unknown as [string, string, string, string | undefined];
    // the API server splits the decoded path: an encoded '/' or '\\' would name other segments upstream
    // than the policy judged
    if (/%2f|%5c/i.test(apiPath))
      return { ok: false, code: 400, message: 'hoop: encoded slashes in the request path are refused' };
    const bearer = bearerOf(req);
    const session = bearer ? await guard.authenticateSecret(sessionId, bearer) : null;
    if (!session) return { ok: false, code: 401, message: 'Unauthorized' };
    const upstream = deps.targets.get(target);
    const auth = guard.authorize(session, target, upstream !== undefined);
    if (!auth.ok) {
      switch (auth.refusal) {
        case 'revoked':
          return { ok: false, code: 401, message: `hoop: session ${session.id} has been revoked` };
        case 'expired':
          return { ok: false, code: 401, message: `hoop: session ${session.id} has expired` };
        case 'unknown-target':
          return {
            ok: false,
            code: 404,
            message: `hoop: ${target} is not a Kubernetes target of this broker`,
          };
        case 'not-granted':
          return {
            ok: false,
            code: 403,
            message: `hoop: session ${session.id} has no grant for target ${target}`,
          };
      }
    }
    const info = resolveRequestInfo(req.method ?? 'GET', apiPath, url.searchParams);
    const op = operationOf(info, apiPath, url);
    const grant = auth.grant;
    const a: Admitted = {
      target,
      apiPath,
      url,
      session,
      grant,
      maxStreams: upstream!.target.max_streams_per_session ?? DEFAULT_MAX_STREAMS,
      upstream: upstream!,
      info,
      op,
      imp: null,
      flow: new OperationFlow({
        sessionId: session.id,
        target,
        connId: connIdOf(req),
        gateway: 'k8s',
        approver,
        sink: {
          record: async (ev) => {
            await deps.record(session.id, ev);
          },
          recordBackground: (ev, done) => deps.recordBackground(session.id, ev, done),
        },
        onRecordFailed: (err) => {
          log.error(
            { err, session_id: session.id },
            'a kubernetes event could not be recorded: closing the connection',
          );
          req.socket.destroy();
        },
      }),
    };
    const refuse = async (rule: string, message: string): Promise<Admission> => {
      await a.flow.refuse(op, { rule, reasons: [message] });
      return { ok: false, code: 403, message: `hoop: ${message}` };
    };
    const impersonationHeaders = Object.keys(req.headers).filter(isImpersonationHeader);
    if (a.upstream.target.impersonate) {
      const i = impersonation(a.upstream.target.impersonate, session.claims);
      if (!i.ok) return refuse('impersonate', i.message);
      a.imp = { user: i.user, groups: i.groups };
    }
    const decision: Decision = decide(grant, op, { kind: 'k8s', info, impersonationHeaders });
    const settled = await a.flow.settle(op, decision);
    if (settled.effect === 'deny') {
      await a.flow.refuse(op, settled);
      return { ok: false, code: 403, message: refusalMessage(settled) };
    }
    allowedReasons.set(a, settled.reasons);
    return { ok: true, a };
  }
  const allowedReasons = new WeakMap<Admitted, string[]>();
  const reasonsOf = (a: Admitted) => allowedReasons.get(a) ?? [];

  /** Register a live request or stream with the guard; null: the session has too many streams. */
  function attach(a: Admitted, close: (end: ConnectionEnd) => void, stream: boolean): (() => void) | null {
    const att = guard.attach(
      a.session,
      stream ? `${a.target}#stream` : a.target,
      { close },
      stream ? a.maxStreams : undefined,
    );
    return att ? () => att.detach() : null;
  }

  // ---- plain requests ----------------------------------------------------------------------------

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const adm = await admit(req);
    if (!adm.ok) return sendStatus(res, adm.code, adm.message);
    const a = adm.a;
    const { info, upstream, op } = a;
    const method = req.method ?? 'GET';
    const detectors = grantDetectors(a.grant);

    // kubectl auth can-i: the broker's policy answers "no" itself; a "yes" is the cluster's to give
    let body: Buffer | null = null;
    if (
      info.resourceRequest &&
      method === 'POST' &&
      info.apiGroup === 'authorization.k8s.io' &&
      info.resource === 'selfsubjectaccessreviews'
    ) {
      body = await collect(req, MAX_REVIEW_BODY_BYTES);
      if (body === null) return sendStatus(res, 413, 'hoop: the access review is too large');
      const review = readAccessReview(body, String(req.headers['content-type'] ?? ''));
      if (!review) return sendStatus(res, 400, 'hoop: the access review could not be read');
      const asked = decide(a.grant, reviewOperation(review.info), { kind: 'k8s', info: review.info });
      if (asked.effect !== 'allow') {
        const reason =
          asked.effect === 'hold' ? `${refusalMessage(asked)} (held for approval)` : refusalMessage(asked);
        const text = reviewAnswer(review.spec, reason);
        res.writeHead(201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        res.end(text);
        a.flow.completed(
          op,
          [...reasonsOf(a), `answered by the broker: ${describeRequest(review.info)}: no`],
          {
            status: 201,
            bytes: Buffer.byteLength(text),
            duration_ms: ms(started),
          },
        );
        return;
      }
    }

    const isStream =
      info.resourceRequest &&
      (info.verb === 'watch' ||
        (info.subresource === 'log' && /^(true|1)$/.test(a.url.searchParams.get('follow') ?? '')));
    const masking = info.resourceRequest && needsMasking(info.resource, info.subresource, detectors);
    const headers = upstreamHeaders(
      upstream,
      req.headers,
      a.imp,
      masking ? { accept: acceptWithoutProtobuf(req.headers.accept), dropEncoding: true } : {},
    );
    if (body) headers['content-length'] = body.length;
    const upReq = httpsRequest(upstreamUrl(upstream, a.apiPath, a.url.search), {
      method,
      headers,
      agent: upstream.agent,
    });
    let bytes = 0;
    let masked = 0;
    let status = 0;
    let ended: string | undefined;
    let finished = false;
    const detach = attach(
      a,
      (end) => {
        ended = end.why;
        upReq.destroy();
        res.destroy();
      },
      isStream,
    );
    if (!detach) {
      upReq.on('error', () => undefined); // destroyed before it was sent: nothing to report
      upReq.destroy();
      return sendStatus(
        res,
        429,
        `hoop: this session has ${a.maxStreams} live streams to ${a.target} already`,
      );
    }
    const done = () => {
      if (finished) return;
      finished = true;
      detach();
      const outcome: OperationOutcome = { status, bytes, duration_ms: ms(started) };
      if (masked) outcome.masked = masked;
      if (ended || !res.writableFinished) outcome.stream = { ended: ended ?? 'client closed' };
      a.flow.completed(op, reasonsOf(a), outcome);
    };
    res.on('close', done);
    upReq.on('error', (err) => {
      log.warn({ err: { message: err.message }, target: a.target }, 'kubernetes upstream request failed');
      if (!res.headersSent)
        sendStatus(
          res,
          502,
          `hoop: the API server of target ${a.target} could not be reached: ${err.message}`,
        );
      else res.destroy();
    });
    upReq.on('response', (upRes) => {
      status = upRes.statusCode ?? 502;
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(upRes.headers))
        if (v !== undefined && !['connection', 'keep-alive', 'transfer-encoding'].includes(k)) out[k] = v;
      if (!masking) {
        res.writeHead(status, out);
        if (isStream) res.flushHeaders();
        upRes.on('data', (c: Buffer) => (bytes += c.length));
        upRes.pipe(res);
        return;
      }
      const ctype = String(upRes.headers['content-type'] ?? '');
      const isLog = info.resourceRequest && info.subresource === 'log';
      if (ctype && !ctype.includes('json') && !isLog) {
        upRes.resume();
        return sendStatus(
          res,
          406,
          `hoop: ${info.resourceRequest ? info.resource : 'this resource'} is masked and can only be served as JSON (the API server answered ${ctype})`,
        );
      }
      delete out['content-length'];
      const ctx: MaskContext = { resource: info.resourceRequest ? info.resource : '', detectors };
      if (isLog) {
        res.writeHead(status, out);
        res.flushHeaders();
        const t = new LineTransform(
          (line) => {
            const m = maskText(line.toString('utf8'), detectors);
            masked += m.count;
            bytes += Buffer.byteLength(m.text);
            return m.text;
          },
          { flushPartialMs: 200 },
        );
        t.on('error', () => res.destroy());
        upRes.pipe(t).pipe(res);
        return;
      }
      if (info.resourceRequest && info.verb === 'watch' && status < 300) {
        res.writeHead(status, out);
        res.flushHeaders();
        const t = new LineTransform((line) => {
          const text = line.toString('utf8').trim();
          if (text === '') return '';
          const ev = JSON.parse(text) as Parameters<typeof maskObject>[0];
          masked += maskObject(ev, ctx);
          const s = `${JSON.stringify(ev)}\n`;
          bytes += Buffer.byteLength(s);
          return s;
        });
        // an event that cannot be read is not passed on: the stream ends there
        t.on('error', (err) => {
          log.warn(
            { err: { message: err.message }, target: a.target },
            'unreadable watch event: stream closed',
          );
          res.destroy();
        });
        upRes.pipe(t).pipe(res);
        return;
      }
      collect(upRes, MAX_MASKED_BODY_BYTES).then(
        (raw) => {
          if (raw === null) return sendStatus(res, 502, 'hoop: the response is too large to be masked');
          let text = '';
          if (raw.length > 0) {
            let parsed: Parameters<typeof maskObject>[0];
            try {
              parsed = JSON.parse(raw.toString('utf8')) as Parameters<typeof maskObject>[0];
            } catch {
              return sendStatus(
                res,
                502,
                'hoop: the API server answered a masked resource with something that is not JSON',
              );
            }
            masked += maskObject(parsed, ctx);
            text = JSON.stringify(parsed);
          }
          bytes = Buffer.byteLength(text);
          res.writeHead(status, { ...out, 'content-length': bytes });
          res.end(text);
        },
        () => res.destroy(),
      );
    });
    if (body) upReq.end(body);
    else req.pipe(upReq);
  }

  // ---- upgrades: exec, attach, port-forward ------------------------------------------------------

  async function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const started = performance.now();
    const adm = await admit(req);
    if (!adm.ok) return sendStatusOnSocket(socket, adm.code, adm.message);
    const a = adm.a;
    // only container streams upgrade: a watch over WebSocket would carry objects past the masking
    if (!a.info.resourceRequest || !UPGRADABLE.includes(a.info.subresource))
      return sendStatusOnSocket(
        socket,
        400,
        `hoop: only exec, attach, portforward and proxy requests can upgrade the connection (${describeRequest(a.info)})`,
      );
    let stream: K8sStreamOutcome = {};
    let finished = false;
    const closers: (() => void)[] = [];
    const detach = attach(
      a,
      (end) => {
        stream.ended = end.why;
        for (const c of closers) c();
        socket.destroy();
      },
      true,
    );
    if (!detach)
      return sendStatusOnSocket(
        socket,
        429,
        `hoop: this session has ${a.maxStreams} live streams to ${a.target} already`,
      );
    relayUpgrade(
      {
        req,
        socket,
        head,
        a,
        log,
        closers,
        portDenied: async (port, decision) => {
          await a.flow.refuse({ ...a.op, ports: [port] }, decision);
        },
      },
      (result) => {
        if (finished) return;
        finished = true;
        detach();
        stream = { ...result.stream, ...(stream.ended ? { ended: stream.ended } : {}) };
        const op = result.ports.length && !a.op.ports ? { ...a.op, ports: result.ports } : a.op;
        const outcome: OperationOutcome = {
          bytes: result.bytes,
          duration_ms: ms(started),
          stream,
          ...(result.status ? { status: result.status } : {}),
          ...(result.exitCode !== null ? { exit_code: result.exitCode } : {}),
        };
        a.flow.completed(op, reasonsOf(a), outcome);
      },
    );
  }

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    onRequest(req, res).catch((err) => {
      log.error({ err }, 'kubernetes gateway request failed');
      sendStatus(res, 500, 'hoop: internal error');
    });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    onUpgrade(req, socket, head).catch((err) => {
      log.error({ err }, 'kubernetes gateway upgrade failed');
      socket.destroy();
    });
  });
  server.on('clientError', (_err, socket: Duplex) => socket.destroy());
  const sockets = new Set<Socket>();
  server.on('secureConnection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port }, 'kubernetes gateway listening');
  return {
    port,
    server,
    liveCount: (id) => guard.connectionCount(id),
    async close() {
      deps.sessionEvents.off('ended', onEnded);
      guard.close({
        reason: 'shutdown',
        message: 'hoop: the broker is shutting down',
        why: 'broker shutdown',
      });
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      for (const u of deps.targets.values()) u.agent.destroy();
    },
  };
}

const ms = (since: number) => Math.round((performance.now() - since) * 10) / 10;

export function collect(stream: NodeJS.ReadableStream, max: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let over = false;
    stream.on('data', (c: Buffer) => {
      n += c.length;
      if (n > max) over = true;
      else chunks.push(c);
    });
    stream.on('end', () => resolve(over ? null : Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}
