// The ssh gateway's pieces without a server: SFTP framing, the VERSION filter, user names, host keys.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensureHostKey, HOST_KEY_FILE, parseHostKey } from '../../../service/gateways/ssh/host-key.js';
import {
  FX,
  FXP,
  filterVersion,
  PacketReader,
  SftpStreamFramer,
  statusPacket,
} from '../../../service/gateways/ssh/sftp-packets.js';
import { pinnedHostKeys } from '../../../service/gateways/ssh/upstream.js';
import { parseSshUserName, sshUserName } from '../../../service/gateways/ssh/user-name.js';

function packet(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1, 0);
  head[4] = type;
  return Buffer.concat([head, body]);
}
const str = (s: string) => {
  const b = Buffer.from(s);
  const l = Buffer.alloc(4);
  l.writeUInt32BE(b.length);
  return Buffer.concat([l, b]);
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

describe('SFTP framing', () => {
  const packets = [
    packet(FXP.OPEN, Buffer.concat([u32(1), str('/srv/app/a.txt'), u32(1), u32(0)])),
    packet(FXP.WRITE, Buffer.concat([u32(2), str('h'), Buffer.alloc(8), str('x'.repeat(40_000))])),
    packet(FXP.CLOSE, Buffer.concat([u32(3), str('h')])),
  ];
  const stream = Buffer.concat(packets);
  const run = (size: number, judge: (head: Buffer) => boolean, framer?: (f: SftpStreamFramer) => void) => {
    const heads: string[] = [];
    const out: Buffer[] = [];
    const f = new SftpStreamFramer('client', {
      head: (head) => {
        heads.push(head.toString('hex'));
        return judge(head);
      },
      out: (bytes) => out.push(bytes),
    });
    for (let i = 0; i < stream.length; i += size) {
      const err = f.push(stream.subarray(i, i + size));
      if (err) throw err;
      framer?.(f);
    }
    return { heads, out, bytes: Buffer.concat(out) };
  };

  it('judges each packet by its head (WRITE: without its data) however the stream is cut', () => {
    const writeHead = packets[1]!.subarray(0, 13 + 1 + 12);
    for (const size of [1, 2, 3, 5, 7, 4096, 32_768, stream.length]) {
      const r = run(size, () => true);
      expect(r.heads, `chunks of ${size}`).toEqual(
        [packets[0]!, writeHead, packets[2]!].map((p) => p.toString('hex')),
      );
      expect(r.bytes.equals(stream), `chunks of ${size}`).toBe(true);
    }
    // a stream that passes whole goes on as the buffer it came as (no copy, one write)
    const whole = run(stream.length, () => true);
    expect(whole.out).toHaveLength(1);
    expect(whole.out[0]!.buffer).toBe(stream.buffer);
  });

  it('drops a refused packet whole, data included', () => {
    for (const size of [1, 7, 4096, stream.length]) {
      const r = run(size, (head) => head[4] !== FXP.WRITE);
      expect(r.bytes.equals(Buffer.concat([packets[0]!, packets[2]!])), `chunks of ${size}`).toBe(true);
    }
  });

  it("puts the broker's own packets between packets, never inside one", () => {
    const own = packet(FXP.STATUS, Buffer.concat([u32(9), u32(3), str('no'), str('en')]));
    for (const size of [1000, 4096, 32_768]) {
      let injected = false;
      const r = run(
        size,
        () => true,
        (f) => {
          if (!injected) {
            injected = true;
            f.inject(own); // after the first chunk: mid-OPEN (1000) or mid-WRITE
          }
        },
      );
      const bytes = r.bytes.toString('hex');
      const at = bytes.indexOf(own.toString('hex'));
      const boundaries = [0, packets[0]!.length, packets[0]!.length + packets[1]!.length].map((n) => n * 2);
      expect(boundaries, `chunks of ${size}`).toContain(at);
      expect(r.bytes.length).toBe(stream.length + own.length);
    }
  });

  it('refuses a length beyond the limit or zero', () => {
    const sink = { head: () => true, out: () => undefined };
    expect(
      new SftpStreamFramer('client', sink).push(Buffer.from([0xff, 0xff, 0xff, 0xff, 1])),
    ).toBeInstanceOf(Error);
    expect(new SftpStreamFramer('server', sink).push(Buffer.from([0, 0, 0, 0]))).toBeInstanceOf(Error);
  });

  it('reads fields, refusing short packets and paths that are not UTF-8', () => {
    const p = packet(FXP.STAT, Buffer.concat([u32(9), str('/srv/ü')]));
    const r = new PacketReader(p, 5);
    expect(r.u32()).toBe(9);
    expect(r.text()).toBe('/srv/ü');
    expect(() => r.u32()).toThrow(/too short/);
    const bad = packet(FXP.STAT, Buffer.concat([u32(9), u32(2), Buffer.from([0xc3, 0x28])]));
    const rb = new PacketReader(bad, 5);
    rb.u32();
    expect(() => rb.text()).toThrow(/UTF-8/);
  });

  it('passes on only the extensions the broker judges; writes STATUS replies', () => {
    const version = packet(
      FXP.VERSION,
      Buffer.concat([
        u32(3),
        str('posix-rename@openssh.com'),
        str('1'),
        str('copy-data'),
        str('1'),
        str('limits@openssh.com'),
        str('1'),
      ]),
    );
    const filtered = filterVersion(version);
    const r = new PacketReader(filtered, 5);
    expect(r.u32()).toBe(3);
    const names: string[] = [];
    while (r.offset < filtered.length) {
      names.push(r.text());
      r.bytes();
    }
    expect(names).toEqual(['posix-rename@openssh.com', 'limits@openssh.com']);
    const status = statusPacket(7, FX.PERMISSION_DENIED, 'hoop: no');
    const s = new PacketReader(status, 5);
    expect([status[4], s.u32(), s.u32(), s.text(), s.text()]).toEqual([FXP.STATUS, 7, 3, 'hoop: no', 'en']);
  });
});

describe('ssh user names', () => {
  it('name a session and a target, and nothing else', () => {
    const user = sshUserName('ses_abc234', 'build-host');
    expect(user).toBe('ses_abc234+build-host');
    expect(parseSshUserName(user)).toEqual({ sessionId: 'ses_abc234', target: 'build-host' });
    for (const bad of [
      'ses_abc234',
      'root',
      'ses_ABC+x',
      'ses_abc+',
      '+x',
      'ses_abc+Bad',
      `ses_${'a'.repeat(400)}+x`,
    ])
      expect(parseSshUserName(bad), bad).toBeNull();
  });
});

describe('host keys', () => {
  it('are generated once into data_dir (0600), then reused; a bad file is refused, never replaced', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hoop-hostkey-'));
    try {
      const first = ensureHostKey(dir);
      expect(first.publicKey).toMatch(/^ssh-ed25519 AAAA/);
      expect(statSync(join(dir, HOST_KEY_FILE)).mode & 0o777).toBe(0o600);
      expect(ensureHostKey(dir).publicKey).toBe(first.publicKey);
      writeFileSync(join(dir, HOST_KEY_FILE), 'garbage');
      expect(() => ensureHostKey(dir)).toThrow(/not a private key/);
      expect(readFileSync(join(dir, HOST_KEY_FILE), 'utf8')).toBe('garbage');
      expect(parseHostKey(first.publicKey)).toMatch(/public key|not a private key/);
      expect(pinnedHostKeys(first.publicKey)).toHaveLength(1);
      expect(typeof pinnedHostKeys('ssh-ed25519 AAAA')).toBe('string');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
