// The transcript body file: where append() says each body lies must be exactly where it is, whatever
// the bodies hold (multi-byte UTF-8, escaped newlines), across appends and after reopening.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ChunkFile } from '../../service/store/chunk-file.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function events(texts: string[]): string {
  return JSON.stringify(texts.map((sql) => ({ operation: { sql } })));
}

describe('ChunkFile.append', () => {
  it('gives each body of one write its own byte range, multi-byte text and escaped newlines included', () => {
    const dir = mkdtempSync(join(tmpdir(), 'chunk-file-'));
    dirs.push(dir);
    const file = ChunkFile.open(dir);
    const bodies = [
      { sessionId: 's-1', firstSeq: 1, prevHash: 'a'.repeat(64), eventsJson: events(['SELECT 1']) },
      // 2-, 3- and 4-byte UTF-8, and a statement with a newline in it (escaped by JSON)
      {
        sessionId: 's-2',
        firstSeq: 7,
        prevHash: 'b'.repeat(64),
        eventsJson: events(["SELECT 'é€😀'", 'a\nb']),
      },
      { sessionId: 's-1', firstSeq: 2, prevHash: 'c'.repeat(64), eventsJson: events(['ß'.repeat(1000)]) },
    ];
    const refs = file.append(bodies);
    const more = file.append([
      { sessionId: 's-3', firstSeq: 1, prevHash: 'd'.repeat(64), eventsJson: events(['ü']) },
    ]);
    expect(refs).toHaveLength(3);
    const bytes = readFileSync(join(dir, readdirOne(dir)));
    for (const [k, ref] of [...refs, ...more].entries()) {
      const body = [...bodies, { sessionId: 's-3', firstSeq: 1 }][k]!;
      const line = JSON.parse(bytes.subarray(ref.offset, ref.offset + ref.length).toString('utf8'));
      expect(line.session_id).toBe(body.sessionId);
      expect(line.first_seq).toBe(body.firstSeq);
      expect(file.read(ref, body.sessionId, body.firstSeq)).toEqual(line.events);
    }
    expect(file.read(refs[1]!, 's-2', 7)).toEqual([
      { operation: { sql: "SELECT 'é€😀'" } },
      { operation: { sql: 'a\nb' } },
    ]);
    file.close();
    // reopened: the earlier ranges still read back
    const again = ChunkFile.open(dir);
    expect(again.read(refs[2]!, 's-1', 2)).toEqual([{ operation: { sql: 'ß'.repeat(1000) } }]);
    again.close();
  });
});

function readdirOne(dir: string): string {
  const names = readdirSync(dir);
  expect(names).toHaveLength(1);
  return names[0]!;
}
