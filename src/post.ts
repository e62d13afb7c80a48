// dist/post.js: the action's post step, run even when the job failed (see src/run-post.ts).
import { run } from './run-post.js';

await run();
