// The broker for bench/k8s.ts, in a process of its own so its CPU time can be read apart from the
// client's and the API server stand-in's: the real broker (embedded store, recorder) with the
// kubernetes gateway. Config comes as JSON in HOOP_BENCH_CONFIG; answers 'cpu' messages with its
// process.cpuUsage() (the embedded store's own process is not counted).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startBroker } from '../service/broker.js';
import type { Config } from '../service/config/schema.js';
import { createLogger } from '../service/log.js';

const config = JSON.parse(process.env.HOOP_BENCH_CONFIG ?? '{}') as Config;
const broker = await startBroker(
  { ...config, data_dir: mkdtempSync(join(tmpdir(), 'hoop-bench-k8s-')) },
  { logger: createLogger('silent') },
);
process.on('message', (m: unknown) => {
  if (m === 'cpu') process.send?.({ cpu: process.cpuUsage() });
  if (m === 'close') broker.close().then(() => process.exit(0));
});
process.send?.({ url: broker.url, k8sPort: broker.k8sPort, caPem: broker.caPem });
