import { describe, expect, it } from 'vitest';
import { ECHO_WAIT_MS, mergeRecordings, TerminalRecording } from '../../service/audit/asciicast.js';
import type { RecordingChunk } from '../../service/store/store.js';

function recording(opts: { recordInput: boolean; maxBytes?: number }) {
  let now = 0;
  const chunks: RecordingChunk[] = [];
  const rec = new TerminalRecording({
    id: 'rec_1',
    header: { width: 100, height: 30, timestamp: 1_700_000_000, env: { TERM: 'xterm' } },
    recordInput: opts.recordInput,
    ...(opts.maxBytes ? { maxBytes: opts.maxBytes } : {}),
    write: async (c) => {
      chunks.push(...c);
    },
    now: () => now,
  });
  return {
    rec,
    advance: (ms: number) => {
      now += ms;
    },
    text: () => chunks.map((c) => c.body).join(''),
    events: () =>
      chunks
        .map((c) => c.body)
        .join('')
        .trim()
        .split('\n')
        .slice(1)
        .map((l) => JSON.parse(l) as [number, string, string]),
  };
}

describe('terminal recordings (asciicast v2)', () => {
  it('records output with its timing, and keeps typed text only once the terminal echoes it', async () => {
    const r = recording({ recordInput: true });
    r.rec.output(Buffer.from('$ '));
    r.advance(100);
    r.rec.input(Buffer.from('ls'));
    r.advance(10);
    r.rec.output(Buffer.from('ls'));
    r.rec.input(Buffer.from('\r'));
    r.rec.output(Buffer.from('\r\nfile\r\nPassword: '));
    r.advance(200);
    r.rec.input(Buffer.from('s3cret'));
    r.advance(ECHO_WAIT_MS + 10);
    r.rec.input(Buffer.from('\r'));
    r.rec.output(Buffer.from('\r\nok\r\n'));
    const summary = await r.rec.finish();
    expect(r.events()).toEqual([
      [0, 'o', '$ '],
      [0.1, 'i', 'ls'],
      [0.11, 'o', 'ls'],
      [0.11, 'i', '\r'],
      [0.11, 'o', '\r\nfile\r\nPassword: '],
      [0.31 + ECHO_WAIT_MS / 1000 + 0.01, 'i', '\r'],
      [0.31 + ECHO_WAIT_MS / 1000 + 0.01, 'o', '\r\nok\r\n'],
    ]);
    expect(r.text()).not.toContain('s3cret');
    expect(summary).toMatchObject({ id: 'rec_1', events: 7, truncated: false, hidden_input_chars: 6 });
    const header = JSON.parse(r.text().split('\n')[0]!) as Record<string, unknown>;
    expect(header).toEqual({
      version: 2,
      width: 100,
      height: 30,
      timestamp: 1_700_000_000,
      env: { TERM: 'xterm' },
    });
  });

  it('joins multi-byte characters split across chunks, and stops at its size limit saying so', async () => {
    const r = recording({ recordInput: false, maxBytes: 300 });
    const euro = Buffer.from('€');
    r.rec.output(euro.subarray(0, 1));
    r.rec.output(euro.subarray(1));
    for (let i = 0; i < 50; i++) r.rec.output(Buffer.from(`line ${i}\r\n`));
    const s = await r.rec.finish();
    expect(r.events()[0]![2]).toBe('€');
    expect(s.truncated).toBe(true);
    expect(r.text()).toContain('the recording stops here');
    expect(r.text()).not.toContain('line 49');
  });

  it('merges recordings one after another into one file', () => {
    const a = '{"version":2,"width":80,"height":24,"timestamp":1}\n[0.5,"o","a"]\n';
    const b = '{"version":2,"width":120,"height":40,"timestamp":9}\n[2,"o","b"]\n';
    const merged = mergeRecordings(
      [
        { cast: a, label: 'first' },
        { cast: b, label: 'second' },
      ],
      'hoop session s',
    )
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as unknown);
    expect(merged[0]).toEqual({ version: 2, width: 120, height: 40, timestamp: 1, title: 'hoop session s' });
    expect(merged.slice(1).map((e) => (e as unknown[]).slice(0, 2))).toEqual([
      [0, 'r'],
      [0, 'o'],
      [0.5, 'o'],
      [1.5, 'r'],
      [1.5, 'o'],
      [3.5, 'o'],
    ]);
  });
});
