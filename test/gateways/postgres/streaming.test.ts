// Backpressure: a 1,000,000-row masked result streamed through the gateway (in its own process, so
// its memory can be measured) to a reader that pauses, and at one point stops reading for 1.5 s.
// The broker must hold the upstream back instead of buffering: its peak RSS stays under 200 MB.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type GatewayChild,
  type GatewayStats,
  startGatewayChild,
  streamRows,
} from '../../../bench/pg-gateway-child.js';
import { newSessionId, newSessionSecret } from '../../../service/sessions/secret.js';
import { generateCa, issueServerCert } from '../../../service/tls/ca.js';
import {
  type GatewayHarness,
  startGatewayHarness,
  TARGET,
  TARGET_DATABASE,
  TARGET_USER,
} from '../../fixtures/pg-gateway-harness.js';
import { sleep } from './helpers.js';

const ROWS = 1_000_000;

let h: GatewayHarness;
let child: GatewayChild;
const sessionId = newSessionId();
const secret = newSessionSecret();

beforeAll(async () => {
  h = await startGatewayHarness({
    seedSql: `CREATE TABLE people AS SELECT g AS id, 'user' || g || '@example.com' AS email,
      'card 4111 1111 1111 1111 on file' AS note FROM generate_series(1, ${ROWS}) g;`,
  });
  const now = new Date();
  const ca = await generateCa('streaming test CA', now);
  const cert = await issueServerCert(ca, ['localhost'], now);
  child = await startGatewayChild({
    target: {
      name: TARGET,
      kind: 'postgres',
      host: '127.0.0.1',
      port: h.pg.port,
      database: TARGET_DATABASE,
      user: TARGET_USER,
      password: { env: 'UNUSED' },
    },
    password: h.targetPassword,
    tls: { certPem: cert.certPem, keyPem: cert.keyPem },
    sessions: [
      {
        id: sessionId,
        secret,
        grant: {
          target: TARGET,
          access: 'read',
          mask: [{ column: 'people.email' }, { detector: 'credit_card' }],
        },
      },
    ],
    recording: 'memory',
  });
}, 60_000);

afterAll(async () => {
  await child?.stop();
  await h?.close();
});

describe('streaming a large masked result', () => {
  it('streams 1,000,000 masked rows with the broker under 200 MB, holding back while the reader stalls', async () => {
    const before = await child.stats();
    child.resetPeak();
    const duringStall: GatewayStats[] = [];
    const result = await streamRows({
      port: child.port,
      database: TARGET,
      sessionId,
      secret,
      sql: 'SELECT id, email, note FROM people',
      stallAfterBytes: 16 << 20,
      stall: async () => {
        for (let i = 0; i < 3; i++) {
          await sleep(500);
          duringStall.push(await child.stats());
        }
      },
    });
    const after = await child.stats();
    expect(result.rows).toBe(ROWS);
    expect(result.maskedOk).toBe(true);
    expect(after.sampledPeakRssMb).toBeLessThan(200);
    // While nobody reads, the broker's memory stays flat: the upstream is paused, not drained into RAM.
    const stallGrowth =
      Math.max(...duringStall.map((s) => s.rssMb)) - Math.min(...duringStall.map((s) => s.rssMb));
    expect(stallGrowth).toBeLessThan(16);
    expect(after.events - before.events).toBeGreaterThanOrEqual(1);
  }, 90_000);
});
