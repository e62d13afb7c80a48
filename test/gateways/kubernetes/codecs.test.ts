// The gateway's protocol pieces without a server: SPDY framing and header compression, the passive
// WebSocket frame reader, the exec recording, access reviews in protobuf, line-wise streaming.
import { adler32Of } from './adler32.js';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readAccessReview } from '../../../service/gateways/kubernetes/access-review.js';
import { ExecRecording } from '../../../service/gateways/kubernetes/exec-record.js';
import {
  controlFrame,
  dataFrame,
  FLAG_FIN,
  FRAME,
  FrameReader,
  HeaderDeflater,
  HeaderInflater,
  SPDY3_DICTIONARY,
} from '../../../service/gateways/kubernetes/spdy.js';
import { SpdyObserver } from '../../../service/gateways/kubernetes/spdy-observer.js';
import { LineTransform } from '../../../service/gateways/kubernetes/streams.js';
import { WsFrameReader } from '../../../service/gateways/kubernetes/ws-frames.js';

describe('SPDY/3.1', () => {
  it('the dictionary is the spec one (1423 bytes, the id peers check)', () => {
    expect(SPDY3_DICTIONARY.length).toBe(1423);
    expect(adler32Of(SPDY3_DICTIONARY)).toBe(0xe3c6a7c2);
  });

  it('header blocks round-trip over one zlib context per direction', async () => {
    const d = new HeaderDeflater();
    const i = new HeaderInflater();
    const blocks: Record<string, string>[] = [
      { streamtype: 'error' },
      { streamtype: 'data', port: '8080', requestid: '0' },
      {},
    ];
    for (const h of blocks) {
      const got = await i.decode(await d.encode(h));
      expect(Object.fromEntries([...got].map(([k, v]) => [k, v[0]]))).toEqual(h);
    }
    d.close();
    i.close();
  });

  it('frames split and coalesced across reads', () => {
    const bytes = Buffer.concat([
      controlFrame(FRAME.PING, 0, Buffer.from([0, 0, 0, 1])),
      dataFrame(3, FLAG_FIN, Buffer.from('hello')),
    ]);
    const r = new FrameReader();
    const frames = [...bytes].flatMap((b) => r.push(Buffer.from([b])));
    expect(frames).toEqual([
      { control: true, type: FRAME.PING, flags: 0, data: Buffer.from([0, 0, 0, 1]) },
      { control: false, streamId: 3, flags: FLAG_FIN, data: Buffer.from('hello') },
    ]);
    expect(() => new FrameReader().push(Buffer.from([0x80, 2, 0, 1, 0, 0, 0, 0]))).toThrow(/version 2/);
  });

  it('the observer reads stream types, records exec channels and judges ports', async () => {
    const d = new HeaderDeflater();
    const syn = async (id: number, h: Record<string, string>) => {
      const head = Buffer.alloc(10);
      head.writeUInt32BE(id);
      return controlFrame(FRAME.SYN_STREAM, 0, Buffer.concat([head, await d.encode(h)]));
    };
    const rec = new ExecRecording('cat', true);
    const o = new SpdyObserver({ recording: rec, portPolicy: null });
    expect(await o.fromClient(await syn(1, { streamtype: 'error' }))).toBe(true);
    expect(await o.fromClient(await syn(3, { streamtype: 'stdin' }))).toBe(true);
    expect(await o.fromClient(await syn(5, { streamtype: 'stdout' }))).toBe(true);
    expect(await o.fromClient(dataFrame(3, 0, Buffer.from('abc')))).toBe(true);
    o.fromServer(dataFrame(5, 0, Buffer.from('abc')));
    o.fromServer(dataFrame(1, FLAG_FIN, Buffer.from('{"metadata":{},"status":"Success"}')));
    await new Promise((r) => setTimeout(r, 20));
    expect(rec.finish()).toMatchObject({ stdin_bytes: 3, stdout_bytes: 3, exit_code: 0 });
    const d2 = new HeaderDeflater();
    const pf = new SpdyObserver({
      recording: null,
      portPolicy: (p) =>
        p === 8080 ? { effect: 'allow', reasons: [] } : { effect: 'deny', reasons: [`port ${p}`] },
    });
    const head = Buffer.alloc(10);
    head.writeUInt32BE(1);
    expect(
      await pf.fromClient(
        controlFrame(
          FRAME.SYN_STREAM,
          0,
          Buffer.concat([head, await d2.encode({ streamtype: 'data', port: '8080' })]),
        ),
      ),
    ).toBe(true);
    head.writeUInt32BE(3);
    expect(
      await pf.fromClient(
        controlFrame(
          FRAME.SYN_STREAM,
          0,
          Buffer.concat([head, await d2.encode({ streamtype: 'data', port: '22' })]),
        ),
      ),
    ).toEqual({
      port: 22,
      reasons: ['port 22'],
    });
    for (const x of [d, d2, o, pf]) x.close();
  });
});

describe('WebSocket frames', () => {
  it('unmasks client frames, skips control frames, handles extended lengths and partial reads', () => {
    const mask = Buffer.from([1, 2, 3, 4]);
    const payload = Buffer.alloc(300, 0x61);
    const masked = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]!));
    const frame = Buffer.concat([Buffer.from([0x82, 0x80 | 126, 1, 44]), mask, masked]);
    const ping = Buffer.from([0x89, 0x00]);
    const r = new WsFrameReader();
    const out = [...Buffer.concat([ping, frame])].flatMap((b) => r.push(Buffer.from([b])));
    expect(out).toEqual([payload]);
  });
});

describe('exec recording', () => {
  it('exit codes from the Status, bytes, an asciicast v2 with the terminal size', () => {
    const r = new ExecRecording('sh -c exit 3', true);
    r.fromClient(4, Buffer.from('{"Width":120,"Height":40}'));
    r.fromServer(1, Buffer.from('out\n'));
    r.fromServer(2, Buffer.from('err\n'));
    r.fromServer(
      3,
      Buffer.from(
        '{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}',
      ),
    );
    const s = r.finish();
    expect(s).toMatchObject({ exit_code: 3, stdout_bytes: 4, stderr_bytes: 4 });
    const [header, ...events] = s.asciicast!.trim().split('\n');
    expect(JSON.parse(header!)).toMatchObject({
      version: 2,
      width: 120,
      height: 40,
      command: 'sh -c exit 3',
    });
    expect(events.map((e) => JSON.parse(e)[2])).toEqual(['out\n', 'err\n']);
    const quiet = new ExecRecording('ls', false);
    quiet.fromServer(3, Buffer.from('{"status":"Failure","message":"container not found"}'));
    expect(quiet.finish()).toEqual({
      stdin_bytes: 0,
      stdout_bytes: 0,
      stderr_bytes: 0,
      exit_code: null,
      error: 'container not found',
    });
  });
});

describe('access reviews', () => {
  const field = (n: number, v: Buffer | string) => {
    const b = Buffer.from(v);
    return Buffer.concat([Buffer.from([(n << 3) | 2, b.length]), b]);
  };
  it('reads kubectl auth can-i in protobuf and JSON', () => {
    const attrs = Buffer.concat([field(1, 'prod'), field(2, 'create'), field(5, 'pods'), field(6, 'exec')]);
    const review = Buffer.concat([field(1, Buffer.alloc(0)), field(2, field(1, attrs))]);
    const unknown = Buffer.concat([
      field(1, Buffer.concat([field(1, 'authorization.k8s.io/v1'), field(2, 'SelfSubjectAccessReview')])),
      field(2, review),
    ]);
    const body = Buffer.concat([Buffer.from('k8s\0', 'latin1'), unknown]);
    expect(readAccessReview(body, 'application/vnd.kubernetes.protobuf')?.info).toEqual({
      resourceRequest: true,
      verb: 'create',
      apiPrefix: 'api',
      apiGroup: '',
      apiVersion: 'v1',
      namespace: 'prod',
      resource: 'pods',
      subresource: 'exec',
      name: '',
    });
    const json = Buffer.from(
      JSON.stringify({ spec: { nonResourceAttributes: { path: '/metrics', verb: 'get' } } }),
    );
    expect(readAccessReview(json, 'application/json')?.info).toEqual({
      resourceRequest: false,
      verb: 'get',
      path: '/metrics',
    });
    expect(
      readAccessReview(Buffer.from('k8s\0\xff', 'latin1'), 'application/vnd.kubernetes.protobuf'),
    ).toBeNull();
  });
});

describe('line streaming', () => {
  it('one call per line, across chunk boundaries, the tail at the end', async () => {
    const t = new LineTransform((l) => `[${l.toString().trimEnd()}]`);
    const out: string[] = [];
    t.on('data', (c: Buffer) => out.push(c.toString()));
    await new Promise((r) =>
      Readable.from([Buffer.from('a\nb'), Buffer.from('c\nd')])
        .pipe(t)
        .on('end', r),
    );
    expect(out).toEqual(['[a]', '[bc]', '[d]']);
  });
});
