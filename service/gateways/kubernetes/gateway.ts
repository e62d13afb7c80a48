// The Kubernetes gateway: an HTTPS endpoint of its own (listen.kubernetes) serving
// /k8s/<target>/<session id>/… with the broker's certificate. Each request: the bearer token (the
// session secret) and the session id in the path → the live session and its grant → request
// attributes → the policy → a Kubernetes Status (403) or the request proxied to the target's API
// server with the broker's credentials for it. Responses that can hold Secret values are read and
// masked (watch streams event by event, logs line by line); exec, attach and port-forward upgrades
// (WebSocket and SPDY/3.1) are passed through, with exec sessions recorded.
import { performance } from 'node:perf_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, request as httpsRequest, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { Logger } from 'pino';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import type { NewEvent } from '../../audit/event.js';
import type { Grant } from '../../config/schema.js';
import type { Detector } from '../../config/schema.js';
import { maskText } from '../../policy/mask/detectors.js';
import {
  acceptWithoutProtobuf,
  maskObject,
  needsMasking,
  type MaskContext,
} from '../../policy/kubernetes/mask.js';
import {
  type KubernetesRequestInfo,
  policyVerb,
  resolveRequestInfo,
} from '../../policy/kubernetes/request-info.js';
import {
  decideKubernetesRequest,
  decidePorts,
  describeRequest,
  grantDetectors,
  type KubernetesDecision,
  type KubernetesGrant,
} from '../../policy/kubernetes/rules.js';
import type { SessionRecord } from '../../sessions/types.js';
import { readAccessReview, reviewAnswer } from './access-review.js';
import { CHANNEL, ExecRecording } from './exec-record.js';
import { KubernetesSessions, type SessionSource } from './sessions.js';
import { sendStatus, sendStatusOnSocket } from './status.js';
import { LineTransform } from './streams.js';
import {
  impersonation,
  isImpersonationHeader,
  type KubernetesUpstream,
  upstreamHeaders,
  upstreamUrl,
} from './upstream.js';
import { SpdyObserver } from './spdy-observer.js';
import { WsFrameReader } from './ws-frames.js';

/** A response the broker must read to mask is held in memory up to this size. */
export const MAX_MASKED_BODY_BYTES = 64 * 1024 * 1024;
/** Request bodies the broker reads (access reviews). */
const MAX_REVIEW_BODY_BYTES = 1024 * 1024;

export interface KubernetesGatewayDeps extends SessionSource {
  logger: Logger;
  tls: { certPem: string; keyPem: string };
  targets: ReadonlyMap<string, KubernetesUpstream>;
  /** append to a session's transcript; resolves when durable */
  record(sessionId: string, event: NewEvent, opts?: { background?: boolean }): Promise<unknown>;
}

export interface KubernetesGateway {
  port: number;
  server: Server;
  /** live requests and streams (all sessions, or one) */
  liveCount(sessionId?: string): number;
  close(): Promise<void>;
}

const ROUTE = /^\/k8s\/([a-z0-9][a-z0-9_-]*)\/([^/]+)(\/.*)?$/;

interface Routed {
  target: string;
  sessionId: string;
  apiPath: string;
  url: URL;
}

function route(req: IncomingMessage): Routed | null {
  let url: URL;
  try {
    url = new URL(req.url ?? '/', 'https://gateway.invalid');
  } catch {
    return null;
  }
  const m = ROUTE.exec(url.pathname);
  if (!m) return null;
  return { target: m[1]!, sessionId: m[2]!, apiPath: m[3] ?? '/', url };
}

const bearerOf = (req: IncomingMessage): string | undefined => {
  const h = req.headers.authorization;
  return h && /^bearer /i.test(h) ? h.slice(7).trim() : undefined;
};

function operationOf(info: KubernetesRequestInfo, method: string, apiPath: string): Record<string, unknown> {
  if (!info.resourceRequest) return { method, path: apiPath, verb: info.verb };
  return {
    method,
    path: apiPath,
    verb: policyVerb(info),
    api_verb: info.verb,
    api_group: info.apiGroup,
    api_version: info.apiVersion,
    resource: info.resource,
    ...(info.subresource ? { subresource: info.subresource } : {}),
    ...(info.namespace ? { namespace: info.namespace } : {}),
    ...(info.name ? { name: info.name } : {}),
  };
}

function asGrant(g: Grant): KubernetesGrant {
  const k = (g as Grant & { kubernetes?: KubernetesGrant['kubernetes'] }).kubernetes;
  return { access: g.access, mask: g.mask, kubernetes: k };
}

export async function startKubernetesGateway(
  deps: KubernetesGatewayDeps,
  listen: { host?: string | undefined; port: number },
): Promise<KubernetesGateway> {
  const log = deps.logger;
  const sessions = new KubernetesSessions(deps);
  const server = createServer({ cert: deps.tls.certPem, key: deps.tls.keyPem });
  const negotiated = new WeakMap<IncomingMessage, string>();
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    handleProtocols: (_offered, req) => negotiated.get(req) ?? false,
  });

  const record = (sessionId: string, event: NewEvent, durable: boolean): Promise<void> =>
    deps.record(sessionId, event, durable ? {} : { background: true }).then(
      () => undefined,
      (err) => log.error({ err, session_id: sessionId }, 'could not record a kubernetes event'),
    );

  /** The common front of requests and upgrades: route, session, grant, impersonation refusal. */
  async function admit(req: IncomingMessage): Promise<
    | {
        ok: true;
        r: Routed;
        session: SessionRecord;
        grant: KubernetesGrant;
        upstream: KubernetesUpstream;
        info: KubernetesRequestInfo;
        imp: { user: string; groups: string[] } | null;
      }
    | { ok: false; code: number; message: string; record?: { sessionId: string; event: NewEvent } }
  > {
    const r = route(req);
    if (!r)
      return {
        ok: false,
        code: 404,
        message:
          'hoop: not a Kubernetes gateway path (use the server URL of the kubeconfig the action wrote)',
      };
    const check = await sessions.check(r.sessionId, bearerOf(req), r.target);
    if (!check.ok) return { ok: false, code: check.code, message: check.message };
    const upstream = deps.targets.get(r.target);
    const method = req.method ?? 'GET';
    const info = resolveRequestInfo(method, r.apiPath, r.url.searchParams);
    const deny = (code: number, message: string, rule: string) => ({
      ok: false as const,
      code,
      message,
      record: {
        sessionId: check.session.id,
        event: {
          target: r.target,
          kind: 'k8s.request',
          operation: operationOf(info, method, r.apiPath),
          decision: 'deny' as const,
          reasons: [message],
          approval: undefined,
          ...(rule ? {} : {}),
        },
      },
    });
    if (!upstream)
      return {
        ok: false,
        code: 404,
        message: `hoop: target ${r.target} is not a Kubernetes target of this broker`,
      };
    const asked = Object.keys(req.headers).filter(isImpersonationHeader);
    if (asked.length)
      return deny(
        403,
        `hoop: the client's own impersonation headers are refused (${asked.join(', ')}); the broker sets the identity`,
        'impersonation',
      );
    let imp: { user: string; groups: string[] } | null = null;
    if (upstream.target.impersonate) {
      const i = impersonation(upstream.target.impersonate, check.session.claims);
      if (!i.ok) return deny(403, `hoop: ${i.message}`, 'impersonate');
      imp = { user: i.user, groups: i.groups };
    }
    return { ok: true, r, session: check.session, grant: asGrant(check.grant), upstream, info, imp };
  }

  function refusalMessage(d: KubernetesDecision): string {
    // A hold has no approver yet: it is a denial that says so.
    const reason = d.reasons[0] ?? 'denied';
    return d.effect === 'hold'
      ? `hoop: ${reason}; approvals are not available, so it is denied`
      : `hoop: ${reason}`;
  }

  // ---- plain requests ----------------------------------------------------------------------------

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const a = await admit(req);
    if (!a.ok) {
      if (a.record) await record(a.record.sessionId, a.record.event, true);
      return sendStatus(res, a.code, a.message);
    }
    const { r, session, grant, upstream, info, imp } = a;
    const method = req.method ?? 'GET';
    const op = operationOf(info, method, r.apiPath);
    const detectors = grantDetectors(grant);

    if (info.resourceRequest && ['exec', 'attach', 'portforward'].includes(info.subresource))
      if (!/upgrade/i.test(String(req.headers.connection ?? ''))) {
        // without an upgrade the API server answers 400 too; judge it anyway so a denial is recorded
      }

    let decision = decideKubernetesRequest(grant, info);
    let body: Buffer | null = null;
    // kubectl auth can-i: the broker's policy answers "no" itself; a "yes" is for the cluster to confirm
    if (
      decision.effect === 'allow' &&
      info.resourceRequest &&
      method === 'POST' &&
      info.apiGroup === 'authorization.k8s.io' &&
      info.resource === 'selfsubjectaccessreviews'
    ) {
      body = await readBody(req, MAX_REVIEW_BODY_BYTES);
      if (body === null) return sendStatus(res, 413, 'hoop: access review body too large');
      const review = readAccessReview(body, String(req.headers['content-type'] ?? ''));
      if (!review) return sendStatus(res, 400, 'hoop: the access review could not be read');
      const asked = decideKubernetesRequest(grant, review.info);
      if (asked.effect !== 'allow') {
        const reason = refusalMessage(asked);
        await record(
          session.id,
          {
            target: r.target,
            kind: 'k8s.request',
            operation: { ...op, review: describeRequest(review.info) },
            decision: 'allow',
            reasons: [`answered by the broker: ${reason}`],
          },
          false,
        );
        const text = reviewAnswer(review.spec, reason);
        res.writeHead(201, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
        return void res.end(text);
      }
    }
    if (decision.effect !== 'allow') {
      const message = refusalMessage(decision);
      await record(
        session.id,
        { target: r.target, kind: 'k8s.request', operation: op, decision: 'deny', reasons: [message] },
        true,
      );
      return sendStatus(
        res,
        403,
        message,
        info.resourceRequest
          ? { name: info.name || undefined, group: info.apiGroup || undefined, kind: info.resource }
          : undefined,
      );
    }
    decision = decision as KubernetesDecision;

    const masking = info.resourceRequest && needsMasking(info.resource, info.subresource, detectors);
    const headers = upstreamHeaders(
      upstream,
      req.headers,
      imp,
      masking ? { accept: acceptWithoutProtobuf(req.headers.accept), dropEncoding: true } : {},
    );
    if (body) headers['content-length'] = body.length;
    const target = upstreamUrl(upstream, r.apiPath, r.url.search);
    const upReq = httpsRequest(target, { method, headers, agent: upstream.agent });
    let bytes = 0;
    let masked = 0;
    let status = 0;
    let finished = false;
    const detach = sessions.attach(session, {
      close: (why) => {
        log.info({ session_id: session.id, target: r.target, why }, 'closing a kubernetes request');
        upReq.destroy();
        res.destroy();
      },
    });
    const done = (outcome: string | null) => {
      if (finished) return;
      finished = true;
      detach();
      void record(
        session.id,
        {
          target: r.target,
          kind: 'k8s.request',
          operation: { ...op, status, ...(outcome ? { outcome } : {}) },
          decision: 'allow',
          reasons: decision.reasons,
          bytes,
          duration_ms: Math.round((performance.now() - started) * 10) / 10,
          ...(masked ? { masked } : {}),
        },
        false,
      );
    };
    res.on('close', () => done(res.writableFinished ? null : 'client closed'));
    upReq.on('error', (err) => {
      log.warn({ err: { message: err.message }, target: r.target }, 'kubernetes upstream request failed');
      if (!res.headersSent)
        sendStatus(
          res,
          502,
          `hoop: the API server of target ${r.target} could not be reached: ${err.message}`,
        );
      else res.destroy();
    });
    upReq.on('response', (upRes) => {
      status = upRes.statusCode ?? 502;
      const outHeaders: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(upRes.headers)) {
        if (v === undefined || ['connection', 'keep-alive', 'transfer-encoding'].includes(k)) continue;
        outHeaders[k] = v;
      }
      const ctype = String(upRes.headers['content-type'] ?? '');
      const isStream =
        info.resourceRequest &&
        (info.verb === 'watch' ||
          (info.subresource === 'log' && r.url.searchParams.get('follow') === 'true'));
      if (!masking) {
        res.writeHead(status, outHeaders);
        if (isStream) res.flushHeaders();
        upRes.on('data', (c: Buffer) => (bytes += c.length));
        upRes.pipe(res);
        return;
      }
      if (ctype && !ctype.includes('json') && !(info.resourceRequest && info.subresource === 'log')) {
        upRes.resume();
        return sendStatus(
          res,
          406,
          `hoop: ${info.resourceRequest ? info.resource : 'this resource'} is masked and can only be served as JSON (the API server answered ${ctype})`,
        );
      }
      delete outHeaders['content-length'];
      const ctx: MaskContext = { resource: info.resourceRequest ? info.resource : '', detectors };
      if (info.resourceRequest && info.subresource === 'log') {
        res.writeHead(status, outHeaders);
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
        upRes.pipe(t).pipe(res);
        t.on('error', () => res.destroy());
        return;
      }
      if (info.resourceRequest && info.verb === 'watch' && status < 300) {
        res.writeHead(status, outHeaders);
        res.flushHeaders();
        const t = new LineTransform((line) => {
          const text = line.toString('utf8').trim();
          if (text === '') return '';
          const ev = JSON.parse(text) as Parameters<typeof maskObject>[0];
          masked += maskObject(ev, ctx);
          const out = `${JSON.stringify(ev)}\n`;
          bytes += Buffer.byteLength(out);
          return out;
        });
        upRes.pipe(t).pipe(res);
        // an event that cannot be read is not passed on: the stream ends there
        t.on('error', (err) => {
          log.warn(
            { err: { message: err.message }, target: r.target },
            'unreadable watch event: stream closed',
          );
          res.destroy();
        });
        return;
      }
      collect(upRes, MAX_MASKED_BODY_BYTES).then(
        (raw) => {
          if (raw === null) return sendStatus(res, 502, 'hoop: the response is too large to be masked');
          let text: string;
          if (raw.length === 0) text = '';
          else {
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
          res.writeHead(status, { ...outHeaders, 'content-length': bytes });
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
    const a = await admit(req);
    if (!a.ok) {
      if (a.record) await record(a.record.sessionId, a.record.event, true);
      return sendStatusOnSocket(socket, a.code, a.message);
    }
    const { r, session, grant, upstream, info, imp } = a;
    const method = req.method ?? 'GET';
    const op = operationOf(info, method, r.apiPath);
    let decision = decideKubernetesRequest(grant, info);
    const verb = policyVerb(info);
    const ports = r.url.searchParams
      .getAll('ports')
      .flatMap((p) => p.split(','))
      .map((p) => Number.parseInt(p, 10))
      .filter((n) => Number.isInteger(n));
    if (decision.effect === 'allow' && verb === 'portforward' && ports.length > 0)
      decision = decidePorts(grant, ports);
    if (decision.effect !== 'allow') {
      const message = refusalMessage(decision);
      await record(
        session.id,
        { target: r.target, kind: 'k8s.request', operation: op, decision: 'deny', reasons: [message] },
        true,
      );
      return sendStatusOnSocket(
        socket,
        403,
        message,
        info.resourceRequest ? { name: info.name, kind: info.resource } : undefined,
      );
    }
    const started = performance.now();
    const command = r.url.searchParams.getAll('command');
    const kind =
      verb === 'portforward'
        ? 'k8s.portforward'
        : verb === 'exec' || verb === 'attach'
          ? 'k8s.exec'
          : 'k8s.request';
    const recording = new ExecRecording(
      verb === 'attach' ? '<attach>' : command.join(' '),
      grant.kubernetes?.record_output === true,
    );
    let closed = false;
    let bytesIn = 0;
    let bytesOut = 0;
    let transport = '';
    let protocol = '';
    let outcome = 'closed';
    const closers: (() => void)[] = [];
    const detach = sessions.attach(session, {
      close: (why) => {
        outcome = why;
        for (const c of closers) c();
        socket.destroy();
      },
    });
    const finish = () => {
      if (closed) return;
      closed = true;
      detach();
      const summary = kind === 'k8s.exec' ? recording.finish() : undefined;
      void record(
        session.id,
        {
          target: r.target,
          kind,
          operation: {
            ...op,
            transport,
            protocol,
            ...(kind === 'k8s.exec'
              ? {
                  command,
                  container: r.url.searchParams.get('container') ?? '',
                  tty: r.url.searchParams.get('tty') === 'true',
                }
              : {}),
            ...(ports.length ? { ports } : {}),
            ...(summary ? summary : {}),
            outcome,
          },
          decision: 'allow',
          reasons: decision.reasons,
          bytes: bytesIn + bytesOut,
          duration_ms: Math.round(performance.now() - started),
        },
        false,
      );
    };
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    const target = upstreamUrl(upstream, r.apiPath, r.url.search);
    // port-forward over WebSocket tunnels SPDY (SPDY/3.1+portforward.k8s.io): passed through as
    // bytes and read frame by frame like SPDY itself, so each stream's port is judged
    const tunnel = upgrade === 'websocket' && verb === 'portforward';
    if (upgrade === 'websocket' && !tunnel) {
      transport = 'websocket';
      const offered = String(req.headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const headers = upstreamHeaders(upstream, {}, imp);
      target.protocol = 'wss:';
      const up = new WebSocket(target, offered, {
        headers: headers as Record<string, string>,
        ...upstream.tls,
        perMessageDeflate: false,
        handshakeTimeout: 15_000,
      });
      closers.push(() => up.terminate());
      up.on('unexpected-response', (_q, upRes) => {
        collect(upRes, 64 * 1024).then(
          (b) => {
            const text = b ? b.toString('utf8') : '';
            socket.end(
              `HTTP/1.1 ${upRes.statusCode ?? 502} ${upRes.statusMessage ?? ''}\r\ncontent-type: ${upRes.headers['content-type'] ?? 'text/plain'}\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
            );
            outcome = `upstream answered ${upRes.statusCode}`;
            finish();
          },
          () => socket.destroy(),
        );
      });
      up.on('error', (err) => {
        if (up.readyState === WebSocket.CONNECTING || !socket.writable) return;
        log.warn({ err: { message: err.message } }, 'kubernetes upstream websocket failed');
      });
      up.once('error', (err) => {
        if (!negotiated.has(req)) {
          sendStatusOnSocket(
            socket,
            502,
            `hoop: the API server of target ${r.target} could not be reached: ${err.message}`,
          );
          outcome = 'upstream unreachable';
          finish();
        }
      });
      up.on('open', () => {
        protocol = up.protocol;
        negotiated.set(req, up.protocol);
        wss.handleUpgrade(req, socket, head, (client) => {
          closers.push(() => client.terminate());
          const observer = kind === 'k8s.exec' && /^v[45]\.channel\.k8s\.io$/.test(up.protocol);
          client.on('message', (data: RawData, isBinary: boolean) => {
            const buf = toBuffer(data);
            bytesIn += buf.length;
            if (observer && isBinary && buf.length) recording.fromClient(buf[0]!, buf.subarray(1));
            if (up.readyState === WebSocket.OPEN) up.send(buf, { binary: isBinary });
          });
          up.on('message', (data: RawData, isBinary: boolean) => {
            const buf = toBuffer(data);
            bytesOut += buf.length;
            if (observer && isBinary && buf.length && buf[0] !== CHANNEL.close)
              recording.fromServer(buf[0]!, buf.subarray(1));
            if (client.readyState === WebSocket.OPEN) client.send(buf, { binary: isBinary });
          });
          const closeBoth = (code: number, reason: Buffer) => {
            const c = code >= 1000 && code < 5000 && code !== 1005 && code !== 1006 ? code : 1000;
            if (client.readyState === WebSocket.OPEN) client.close(c, reason);
            if (up.readyState === WebSocket.OPEN) up.close(c, reason);
            finish();
          };
          client.on('close', closeBoth);
          up.on('close', closeBoth);
          client.on('error', () => up.terminate());
        });
      });
      return;
    }
    if (upgrade.startsWith('spdy/') || tunnel) {
      transport = tunnel ? 'websocket' : 'spdy';
      return spdyPassthrough(req, socket, head, upstream, target, imp, {
        tunnel,
        onProtocol: (p) => (protocol = p),
        closers,
        observe: (fromClient, chunk) => {
          if (fromClient) bytesIn += chunk.length;
          else bytesOut += chunk.length;
        },
        recording: kind === 'k8s.exec' ? recording : null,
        portPolicy:
          verb === 'portforward' && ports.length === 0 ? (p: number) => decidePorts(grant, [p]) : null,
        onPortDenied: (message) =>
          void record(
            session.id,
            {
              target: r.target,
              kind: 'k8s.portforward',
              operation: op,
              decision: 'deny',
              reasons: [message],
            },
            true,
          ),
        done: (why) => {
          if (why) outcome = why;
          finish();
        },
      });
    }
    sendStatusOnSocket(socket, 400, `hoop: unsupported upgrade ${JSON.stringify(upgrade)}`);
    outcome = 'unsupported upgrade';
    finish();
  }

  function spdyPassthrough(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    upstream: KubernetesUpstream,
    target: URL,
    imp: { user: string; groups: string[] } | null,
    h: {
      /** SPDY inside WebSocket frames */
      tunnel: boolean;
      onProtocol(p: string): void;
      closers: (() => void)[];
      observe(fromClient: boolean, chunk: Buffer): void;
      recording: ExecRecording | null;
      portPolicy: ((port: number) => KubernetesDecision) | null;
      onPortDenied(message: string): void;
      done(why: string | null): void;
    },
  ): void {
    const headers = upstreamHeaders(upstream, req.headers, imp);
    headers.connection = 'Upgrade';
    headers.upgrade = String(req.headers.upgrade);
    const lines = [`${req.method ?? 'POST'} ${target.pathname}${target.search} HTTP/1.1`];
    for (const [k, v] of Object.entries(headers)) {
      if (v === undefined) continue;
      for (const one of Array.isArray(v) ? v : [String(v)]) lines.push(`${k}: ${one}`);
    }
    const port = Number(target.port || 443);
    const up = tlsConnect({
      host: target.hostname,
      port,
      servername:
        upstream.tls.servername ?? (/^[\d.]+$|:/.test(target.hostname) ? undefined : target.hostname),
      ...upstream.tls,
      ALPNProtocols: ['http/1.1'],
    });
    h.closers.push(() => up.destroy());
    let responded = false;
    let pending = Buffer.alloc(0);
    const fail = (why: string) => {
      if (!responded) sendStatusOnSocket(socket, 502, `hoop: ${why}`);
      else socket.destroy();
      up.destroy();
      h.done(why);
    };
    up.on('error', (err) => fail(`the API server could not be reached: ${err.message}`));
    up.on('secureConnect', () => {
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) up.write(head);
    });
    const observer = new SpdyObserver({
      recording: h.recording,
      portPolicy: h.portPolicy,
      onPortDenied: (message) => {
        h.onPortDenied(message);
        socket.destroy();
        up.destroy();
        h.done('port denied');
      },
    });
    const wsFromClient = h.tunnel ? new WsFrameReader() : null;
    const wsFromServer = h.tunnel ? new WsFrameReader() : null;
    const readServer = (chunk: Buffer) => {
      try {
        if (!wsFromServer) return observer.fromServer(chunk);
        for (const payload of wsFromServer.push(chunk)) observer.fromServer(payload);
      } catch {
        socket.destroy();
      }
    };
    const readClient = async (chunk: Buffer): Promise<boolean> => {
      if (!wsFromClient) return observer.fromClient(chunk);
      for (const payload of wsFromClient.push(chunk)) if (!(await observer.fromClient(payload))) return false;
      return true;
    };
    const onUpData = (chunk: Buffer) => {
      if (!responded) {
        pending = Buffer.concat([pending, chunk]);
        const end = pending.indexOf('\r\n\r\n');
        if (end === -1) {
          if (pending.length > 64 * 1024) fail('the API server sent an oversized response head');
          return;
        }
        responded = true;
        const headText = pending.subarray(0, end).toString('latin1');
        const rest = pending.subarray(end + 4);
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headText)?.[1] ?? 0);
        socket.write(pending.subarray(0, end + 4));
        if (status !== 101) {
          // not switched: pass the answer on and end both sides when the server is done
          if (rest.length) socket.write(rest);
          up.on('end', () => socket.end());
          up.pipe(socket as NodeJS.WritableStream);
          up.off('data', onUpData);
          h.done(`upstream answered ${status}`);
          return;
        }
        h.onProtocol(
          /(?:x-stream-protocol-version|sec-websocket-protocol):\s*([^\r\n]+)/i.exec(headText)?.[1]?.trim() ??
            '',
        );
        if (rest.length) {
          h.observe(false, rest);
          readServer(rest);
          socket.write(rest);
        }
        return;
      }
      h.observe(false, chunk);
      readServer(chunk);
      if (!socket.write(chunk)) {
        up.pause();
        socket.once('drain', () => up.resume());
      }
    };
    up.on('data', onUpData);
    // client bytes wait for the observer (a port-forward stream's port is judged before it passes)
    socket.on('data', (chunk: Buffer) => {
      h.observe(true, chunk);
      socket.pause();
      readClient(chunk).then(
        (pass) => {
          if (!pass || up.destroyed) return;
          if (up.write(chunk)) socket.resume();
          else up.once('drain', () => socket.resume());
        },
        () => socket.destroy(),
      );
    });
    const end = () => {
      socket.destroy();
      up.destroy();
      observer.close();
      h.done(null);
    };
    socket.on('close', end);
    up.on('close', end);
    socket.on('error', () => undefined);
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
    liveCount: (id) => sessions.count(id),
    async close() {
      sessions.close();
      wss.close();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      for (const u of deps.targets.values()) u.agent.destroy();
    },
  };
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

async function readBody(req: IncomingMessage, max: number): Promise<Buffer | null> {
  return collect(req, max);
}

function collect(stream: NodeJS.ReadableStream, max: number): Promise<Buffer | null> {
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

export type { Detector };
