// exec, attach and port-forward: upgraded connections between kubectl and the API server.
// - exec/attach over WebSocket (v5/v4.channel.k8s.io): terminated on both sides with `ws` and
//   relayed message by message, the channel byte of each read for the recording;
// - SPDY/3.1 (older kubectl, and the fallback of port-forward) and port-forward's WebSocket tunnel
//   (SPDY/3.1+portforward.k8s.io, which `ws` cannot offer: its name is not an RFC 7230 token):
//   passed through as bytes, read by a passive frame reader (SpdyObserver), which also judges each
//   port-forward stream's port before its frame passes.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import type { Logger } from 'pino';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import type { K8sStreamOutcome } from '../../audit/operation-events.js';
import type { DenyDecision } from '../../policy/decision.js';
import { policyVerb } from '../../policy/kubernetes/request-info.js';
import { decide } from '../../policy/decide.js';
import { CHANNEL, ExecRecording } from './exec-record.js';
import type { Admitted } from './gateway.js';
import { SpdyObserver } from './spdy-observer.js';
import { sendStatusOnSocket } from './status.js';
import { upstreamHeaders, upstreamUrl } from './upstream.js';
import { WsFrameReader } from './ws-frames.js';

export interface UpgradeResult {
  bytes: number;
  stream: K8sStreamOutcome;
  exitCode: number | null;
  /** the API server's answer when it did not switch protocols */
  status?: number;
  /** port-forward: the ports the streams asked for */
  ports: number[];
}

export interface UpgradeContext {
  req: IncomingMessage;
  socket: Duplex;
  head: Buffer;
  a: Admitted;
  log: Logger;
  /** run when the guard closes the connection */
  closers: (() => void)[];
  /** a port-forward stream asked for a port the grant does not allow: record it (durably) */
  portDenied(port: number, decision: DenyDecision): Promise<void>;
}

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  handleProtocols: (_o, req) => chosen.get(req) ?? false,
});
const chosen = new WeakMap<IncomingMessage, string>();

export function relayUpgrade(c: UpgradeContext, done: (r: UpgradeResult) => void): void {
  const upgrade = String(c.req.headers.upgrade ?? '').toLowerCase();
  const verb = policyVerb(c.a.info);
  const isExec = verb === 'exec' || verb === 'attach';
  const recording = isExec
    ? new ExecRecording(
        verb === 'attach' ? '<attach>' : (c.a.op.command ?? []).join(' '),
        c.a.grant.kubernetes?.record_output === true,
      )
    : null;
  const tunnel = upgrade === 'websocket' && verb === 'portforward';
  if (upgrade === 'websocket' && !tunnel) return relayWebSocket(c, recording, done);
  if (upgrade.startsWith('spdy/') || tunnel) return passThrough(c, recording, tunnel, done);
  sendStatusOnSocket(c.socket, 400, `hoop: unsupported upgrade ${JSON.stringify(upgrade)}`);
  done({ bytes: 0, stream: { ended: 'unsupported upgrade' }, exitCode: null, ports: [] });
}

function finishExec(recording: ExecRecording | null, stream: K8sStreamOutcome): number | null {
  if (!recording) return null;
  const s = recording.finish();
  stream.stdin_bytes = s.stdin_bytes;
  stream.stdout_bytes = s.stdout_bytes;
  stream.stderr_bytes = s.stderr_bytes;
  if (s.error !== undefined) stream.error = s.error;
  if (s.asciicast !== undefined) stream.asciicast = s.asciicast;
  if (s.asciicast_truncated) stream.asciicast_truncated = true;
  return s.exit_code;
}

function relayWebSocket(
  c: UpgradeContext,
  recording: ExecRecording | null,
  done: (r: UpgradeResult) => void,
): void {
  const { req, socket, head, a } = c;
  const stream: K8sStreamOutcome = { transport: 'websocket' };
  let bytes = 0;
  let finished = false;
  let status: number | undefined;
  const finish = () => {
    if (finished) return;
    finished = true;
    const exitCode = finishExec(recording, stream);
    done({ bytes, stream, exitCode, ports: [], ...(status ? { status } : {}) });
  };
  const offered = String(req.headers['sec-websocket-protocol'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const target = upstreamUrl(a.upstream, a.apiPath, a.url.search);
  target.protocol = 'wss:';
  const up = new WebSocket(target, offered, {
    headers: upstreamHeaders(a.upstream, {}, a.imp) as Record<string, string>,
    ...a.upstream.tls,
    perMessageDeflate: false,
    handshakeTimeout: 15_000,
  });
  c.closers.push(() => up.terminate());
  let opened = false;
  up.on('unexpected-response', (_q, upRes) => {
    status = upRes.statusCode ?? 502;
    const chunks: Buffer[] = [];
    upRes.on('data', (d: Buffer) => chunks.length < 64 && chunks.push(d));
    upRes.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      socket.end(
        `HTTP/1.1 ${status} ${upRes.statusMessage ?? ''}\r\ncontent-type: ${upRes.headers['content-type'] ?? 'text/plain'}\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
      );
      stream.ended = `the API server answered ${status}`;
      finish();
    });
  });
  up.on('error', (err) => {
    if (opened || status) return;
    sendStatusOnSocket(
      socket,
      502,
      `hoop: the API server of target ${a.target} could not be reached: ${err.message}`,
    );
    stream.ended = 'API server unreachable';
    finish();
  });
  up.on('open', () => {
    opened = true;
    stream.protocol = up.protocol;
    chosen.set(req, up.protocol);
    wss.handleUpgrade(req, socket, head, (client) => {
      c.closers.push(() => client.terminate());
      const read = recording !== null && /^v[45]\.channel\.k8s\.io$/.test(up.protocol);
      client.on('message', (data: RawData, isBinary: boolean) => {
        const buf = toBuffer(data);
        bytes += buf.length;
        if (read && isBinary && buf.length) recording.fromClient(buf[0]!, buf.subarray(1));
        if (up.readyState === WebSocket.OPEN) up.send(buf, { binary: isBinary });
      });
      up.on('message', (data: RawData, isBinary: boolean) => {
        const buf = toBuffer(data);
        bytes += buf.length;
        if (read && isBinary && buf.length && buf[0] !== CHANNEL.close)
          recording.fromServer(buf[0]!, buf.subarray(1));
        if (client.readyState === WebSocket.OPEN) client.send(buf, { binary: isBinary });
      });
      const closeBoth = (code: number, reason: Buffer) => {
        const ok = code >= 1000 && code < 5000 && code !== 1005 && code !== 1006 ? code : 1000;
        if (client.readyState === WebSocket.OPEN) client.close(ok, reason);
        if (up.readyState === WebSocket.OPEN) up.close(ok, reason);
        finish();
      };
      client.on('close', closeBoth);
      up.on('close', closeBoth);
      client.on('error', () => up.terminate());
    });
  });
}

function passThrough(
  c: UpgradeContext,
  recording: ExecRecording | null,
  tunnel: boolean,
  done: (r: UpgradeResult) => void,
): void {
  const { req, socket, head, a } = c;
  const stream: K8sStreamOutcome = { transport: tunnel ? 'websocket' : 'spdy' };
  let bytes = 0;
  let finished = false;
  let status: number | undefined;
  const checkPorts = policyVerb(a.info) === 'portforward' && !a.op.ports;
  const observer = new SpdyObserver({
    recording,
    portPolicy: checkPorts
      ? (p: number) =>
          decide(a.grant, { ...a.op, ports: [p] }, { kind: 'k8s', info: a.info, portsOnly: true })
      : null,
  });
  const finish = () => {
    if (finished) return;
    finished = true;
    observer.close();
    const exitCode = finishExec(recording, stream);
    done({ bytes, stream, exitCode, ports: [...observer.ports], ...(status ? { status } : {}) });
  };
  const target = upstreamUrl(a.upstream, a.apiPath, a.url.search);
  const headers = upstreamHeaders(a.upstream, req.headers, a.imp);
  headers.connection = 'Upgrade';
  headers.upgrade = String(req.headers.upgrade);
  const lines = [`${req.method ?? 'POST'} ${target.pathname}${target.search} HTTP/1.1`];
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [String(v)]) lines.push(`${k}: ${one}`);
  }
  const up = tlsConnect({
    host: target.hostname,
    port: Number(target.port || 443),
    ...(/^[\d.]+$|:/.test(target.hostname) ? {} : { servername: target.hostname }),
    ...a.upstream.tls,
    ALPNProtocols: ['http/1.1'],
  });
  c.closers.push(() => up.destroy());
  let responded = false;
  let pending = Buffer.alloc(0);
  const end = () => {
    socket.destroy();
    up.destroy();
    finish();
  };
  up.on('error', (err) => {
    if (!responded)
      sendStatusOnSocket(
        socket,
        502,
        `hoop: the API server of target ${a.target} could not be reached: ${err.message}`,
      );
    stream.ended ??= 'API server unreachable';
    end();
  });
  up.on('secureConnect', () => {
    up.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (head.length) up.write(head);
  });

  const wsFromClient = tunnel ? new WsFrameReader() : null;
  const wsFromServer = tunnel ? new WsFrameReader() : null;
  const readServer = (chunk: Buffer) => {
    try {
      if (!wsFromServer) return observer.fromServer(chunk);
      for (const payload of wsFromServer.push(chunk)) observer.fromServer(payload);
    } catch {
      end();
    }
  };
  /** false: a stream asked for a port the grant does not allow (recorded), and the connection ends */
  const readClient = async (chunk: Buffer): Promise<boolean> => {
    const payloads = wsFromClient ? wsFromClient.push(chunk) : [chunk];
    for (const p of payloads) {
      const verdict = await observer.fromClient(p);
      if (verdict !== true) {
        const port = verdict.port;
        await c.portDenied(port, { effect: 'deny', rule: 'kubernetes.ports', reasons: verdict.reasons });
        stream.ended = `port ${port} denied`;
        return false;
      }
    }
    return true;
  };

  const onUpData = (chunk: Buffer) => {
    if (responded) {
      bytes += chunk.length;
      readServer(chunk);
      if (!socket.write(chunk)) {
        up.pause();
        socket.once('drain', () => up.resume());
      }
      return;
    }
    pending = Buffer.concat([pending, chunk]);
    const at = pending.indexOf('\r\n\r\n');
    if (at === -1) {
      if (pending.length > 64 * 1024) {
        stream.ended = 'the API server sent an oversized response head';
        end();
      }
      return;
    }
    responded = true;
    const headText = pending.subarray(0, at).toString('latin1');
    const rest = pending.subarray(at + 4);
    const code = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headText)?.[1] ?? 0);
    socket.write(pending.subarray(0, at + 4));
    if (code !== 101) {
      // not switched: the answer goes to the client as it is, and the connection ends with it
      status = code;
      stream.ended = `the API server answered ${code}`;
      up.off('data', onUpData);
      if (rest.length) socket.write(rest);
      up.on('data', (d: Buffer) => socket.write(d));
      up.on('end', () => socket.end());
      return;
    }
    stream.protocol =
      /(?:x-stream-protocol-version|sec-websocket-protocol):\s*([^\r\n]+)/i.exec(headText)?.[1]?.trim() ?? '';
    if (rest.length) {
      bytes += rest.length;
      readServer(rest);
      socket.write(rest);
    }
  };
  up.on('data', onUpData);
  // client bytes wait for the observer: a port-forward stream's port is judged before it passes
  socket.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    socket.pause();
    readClient(chunk).then(
      (pass) => {
        if (!pass) return end();
        if (up.destroyed) return;
        if (up.write(chunk)) socket.resume();
        else up.once('drain', () => socket.resume());
      },
      () => end(),
    );
  });
  socket.on('close', end);
  up.on('close', end);
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
