import { serialize } from 'pg-protocol';
import { describe, expect, it } from 'vitest';
import {
  decodeBind,
  decodeDescribeOrClose,
  decodeExecute,
  decodeParse,
  decodeQuery,
  decodeSaslInitialResponse,
} from '../../../service/gateways/postgres/frontend-messages.js';
import {
  type FrontendLimits,
  type FrontendMessage,
  FrontendReader,
  FrontendType,
  LARGE_FRONTEND_TYPES,
  type StartupPacket,
} from '../../../service/gateways/postgres/frontend-reader.js';
import { startupPacket } from '../../../service/gateways/postgres/upstream.js';

const limits: FrontendLimits = { largeTypes: LARGE_FRONTEND_TYPES, largeMax: 1 << 20, otherMax: 1024 };

function readAll(reader: FrontendReader): FrontendMessage[] {
  const out: FrontendMessage[] = [];
  for (;;) {
    const r = reader.readMessage(limits);
    if (r.kind === 'incomplete') return out;
    if (r.kind === 'invalid') throw new Error(r.message);
    out.push(r.value);
  }
}

function startup(reader: FrontendReader): StartupPacket | string | null {
  const r = reader.readStartup(10_000);
  if (r.kind === 'incomplete') return null;
  if (r.kind === 'invalid') return r.message;
  return r.value;
}

describe('FrontendReader: startup packets', () => {
  it('reads a StartupMessage delivered one byte at a time', () => {
    const packet = startupPacket(
      new Map([
        ['user', 'ses_abc'],
        ['database', 'appdb'],
        ['application_name', 'psql'],
      ]),
    );
    const reader = new FrontendReader();
    for (let i = 0; i < packet.length - 1; i++) {
      reader.push(packet.subarray(i, i + 1));
      expect(startup(reader)).toBeNull();
    }
    reader.push(packet.subarray(packet.length - 1));
    const p = startup(reader);
    expect(p).toMatchObject({ kind: 'startup', major: 3, minor: 0 });
    expect(
      p !== null && typeof p === 'object' && p.kind === 'startup' && Object.fromEntries(p.parameters),
    ).toEqual({
      user: 'ses_abc',
      database: 'appdb',
      application_name: 'psql',
    });
    expect(reader.buffered).toBe(0);
  });

  it('recognises SSLRequest, GSSENCRequest and CancelRequest', () => {
    const reader = new FrontendReader();
    const ssl = Buffer.alloc(8);
    ssl.writeInt32BE(8, 0);
    ssl.writeInt32BE(80877103, 4);
    const gss = Buffer.alloc(8);
    gss.writeInt32BE(8, 0);
    gss.writeInt32BE(80877104, 4);
    const cancel = Buffer.alloc(16);
    cancel.writeInt32BE(16, 0);
    cancel.writeInt32BE(80877102, 4);
    cancel.writeInt32BE(4242, 8);
    cancel.writeUInt32BE(0xdeadbeef, 12);
    reader.push(Buffer.concat([ssl, gss, cancel]));
    expect(startup(reader)).toEqual({ kind: 'ssl-request' });
    expect(startup(reader)).toEqual({ kind: 'gssenc-request' });
    expect(startup(reader)).toEqual({
      kind: 'cancel-request',
      processId: 4242,
      secretKey: Buffer.from('deadbeef', 'hex'),
    });
  });

  it('refuses malformed startup packets with a message that says what is wrong', () => {
    const cases: Array<[Buffer, RegExp]> = [
      [Buffer.from([0, 0, 0, 2, 0, 3, 0, 0]), /invalid length of startup packet \(2\)/],
      [Buffer.from([0x7f, 0xff, 0xff, 0xff]), /invalid length of startup packet/],
      [
        (() => {
          const b = Buffer.alloc(9);
          b.writeInt32BE(9, 0);
          b.writeInt32BE(2 << 16, 4);
          return b;
        })(),
        /unsupported frontend protocol 2\.0/,
      ],
      [
        (() => {
          const b = Buffer.from('\0\0\0\0\0\x03\0\0user\0x\0', 'latin1');
          b.writeInt32BE(b.length, 0);
          return b;
        })(),
        /missing its terminator/,
      ],
      [
        (() => {
          const b = Buffer.from('\0\0\0\0\0\x03\0\0user\0a\0user\0b\0\0', 'latin1');
          b.writeInt32BE(b.length, 0);
          return b;
        })(),
        /parameter "user" given more than once/,
      ],
      [
        (() => {
          const b = Buffer.alloc(12);
          b.writeInt32BE(12, 0);
          b.writeInt32BE(80877103, 4);
          return b;
        })(),
        /invalid length of SSL/,
      ],
    ];
    for (const [bytes, message] of cases) {
      const reader = new FrontendReader();
      reader.push(bytes);
      expect(startup(reader)).toMatch(message);
    }
  });

  it('collects _pq_ protocol options apart from parameters', () => {
    const reader = new FrontendReader();
    reader.push(
      startupPacket(
        new Map([
          ['user', 'u'],
          ['_pq_.something', 'on'],
        ]),
      ),
    );
    const p = startup(reader);
    expect(p).toMatchObject({ kind: 'startup', protocolOptions: ['_pq_.something'] });
  });
});

describe('FrontendReader: typed messages', () => {
  const batch = Buffer.concat([
    serialize.parse({ name: 's1', text: 'SELECT $1::int', types: [23] }),
    serialize.bind({ statement: 's1', portal: '', values: ['7'] }),
    serialize.describe({ type: 'P', name: '' }),
    serialize.execute({ portal: '', rows: 0 }),
    serialize.sync(),
  ]);

  it('splits coalesced messages and hands out views of the chunk', () => {
    const reader = new FrontendReader();
    reader.push(batch);
    const msgs = readAll(reader);
    expect(msgs.map((m) => String.fromCharCode(m.type))).toEqual(['P', 'B', 'D', 'E', 'S']);
    expect(msgs[0]!.raw.buffer).toBe(batch.buffer);
    expect(Buffer.concat(msgs.map((m) => m.raw)).equals(batch)).toBe(true);
  });

  it('reassembles messages split at every possible point, headers included', () => {
    for (let cut = 1; cut < batch.length; cut++) {
      const reader = new FrontendReader();
      reader.push(batch.subarray(0, cut));
      const first = readAll(reader);
      reader.push(batch.subarray(cut));
      const rest = readAll(reader);
      expect(Buffer.concat([...first, ...rest].map((m) => m.raw)).equals(batch)).toBe(true);
      expect(reader.buffered).toBe(0);
    }
  });

  it('refuses unknown types, impossible lengths and oversized messages', () => {
    const bad: Array<[Buffer, RegExp]> = [
      [Buffer.from([0x7a, 0, 0, 0, 4]), /invalid frontend message type "z"/],
      [Buffer.from([0x00, 0, 0, 0, 4]), /invalid frontend message type 0x00/],
      [Buffer.from([0x51, 0, 0, 0, 3]), /invalid message length 3/],
      [Buffer.from([0x51, 0x7f, 0, 0, 0]), /exceeds the broker's limit of 1048576 bytes/],
      [
        Buffer.from([0x53, 0, 0, 8, 0]),
        /message type "S" of 2049 bytes exceeds the broker's limit of 1024 bytes/,
      ],
    ];
    for (const [bytes, message] of bad) {
      const reader = new FrontendReader();
      reader.push(bytes);
      const r = reader.readMessage(limits);
      expect(r.kind).toBe('invalid');
      expect(r.kind === 'invalid' && r.message).toMatch(message);
    }
  });

  it('an oversized message is refused from its header, before its body arrives', () => {
    const reader = new FrontendReader();
    reader.push(Buffer.from([FrontendType.query, 0x10, 0, 0, 0]));
    expect(reader.readMessage(limits).kind).toBe('invalid');
  });
});

describe('frontend message decoders', () => {
  it('decodes Query and refuses a NUL inside the text or a missing terminator', () => {
    expect(decodeQuery(Buffer.from('SELECT 1\0'))).toBe('SELECT 1');
    expect(decodeQuery(Buffer.from('SELECT 1\0; DROP TABLE x\0'))).toBeNull();
    expect(decodeQuery(Buffer.from('SELECT 1'))).toBeNull();
  });

  it('decodes Parse, Bind (result formats), Describe, Close and Execute', () => {
    const parse = serialize.parse({ name: 'n', text: 'SELECT $1', types: [25] });
    expect(decodeParse(parse.subarray(5))).toEqual({ name: 'n', text: 'SELECT $1', paramTypes: [25] });
    const bind = serialize.bind({ statement: 'n', portal: 'p', values: ['x', null], binary: true });
    expect(decodeBind(bind.subarray(5))).toEqual({ portal: 'p', statement: 'n', resultFormats: [1] });
    expect(decodeDescribeOrClose(serialize.describe({ type: 'S', name: 'n' }).subarray(5))).toEqual({
      target: 'S',
      name: 'n',
    });
    expect(decodeDescribeOrClose(serialize.close({ type: 'P', name: 'p' }).subarray(5))).toEqual({
      target: 'P',
      name: 'p',
    });
    expect(decodeExecute(serialize.execute({ portal: 'p', rows: 50 }).subarray(5))).toEqual({
      portal: 'p',
      maxRows: 50,
    });
  });

  it('refuses bodies with trailing bytes or short counts', () => {
    const parse = serialize.parse({ name: 'n', text: 'SELECT 1', types: [] });
    expect(decodeParse(Buffer.concat([parse.subarray(5), Buffer.from([1])]))).toBeNull();
    const bind = serialize.bind({ statement: 'n', portal: '', values: ['abc'] });
    expect(decodeBind(bind.subarray(5, bind.length - 3))).toBeNull();
    expect(decodeDescribeOrClose(Buffer.from('Xname\0'))).toBeNull();
    expect(decodeExecute(Buffer.from('p\0\0\0'))).toBeNull();
  });

  it('decodes SASLInitialResponse', () => {
    const msg = serialize.sendSASLInitialResponseMessage('SCRAM-SHA-256', 'n,,n=*,r=abc');
    expect(decodeSaslInitialResponse(msg.subarray(5))).toEqual({
      mechanism: 'SCRAM-SHA-256',
      data: Buffer.from('n,,n=*,r=abc'),
    });
    expect(decodeSaslInitialResponse(Buffer.from('SCRAM-SHA-256\0\0\0\0\x09abc', 'latin1'))).toBeNull();
  });
});
