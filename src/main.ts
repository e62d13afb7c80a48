// dist/main.js: the action's main step (see src/run-main.ts).
import { run } from './run-main.js';

await run();
