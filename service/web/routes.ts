// The read-only audit viewer at /ui/: a page, a script and a style sheet, all static, and the
// asciinema-player bundle (its script and style, read from the installed package: no CDN) that replays
// terminal recordings. Data comes from the JSON API behind the admin token; a strict
// Content-Security-Policy allows only this origin's script and style, and no framing
// ('wasm-unsafe-eval': the player's terminal emulator is WebAssembly, compiled from its own bundle).
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { VIEWER_CSS, VIEWER_HTML, VIEWER_JS } from './viewer-assets.js';

const CSP =
  "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const require = createRequire(import.meta.url);
/** the player's files, read once on first use */
const vendor = new Map<string, Promise<string>>();
function playerFile(file: 'asciinema-player.min.js' | 'asciinema-player.css'): Promise<string> {
  let text = vendor.get(file);
  if (!text) {
    text = readFile(require.resolve(`asciinema-player/dist/bundle/${file}`), 'utf8');
    vendor.set(file, text);
  }
  return text;
}

function send(reply: FastifyReply, type: string, body: string) {
  return reply
    .header('content-type', type)
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-store')
    .send(body);
}

export async function viewerRoutes(app: FastifyInstance): Promise<void> {
  app.get('/ui', { schema: { hide: true } }, async (_req, reply) => reply.redirect('/ui/'));
  app.get('/ui/', { schema: { hide: true } }, async (_req, reply) =>
    send(reply, 'text/html; charset=utf-8', VIEWER_HTML),
  );
  app.get('/ui/app.js', { schema: { hide: true } }, async (_req, reply) =>
    send(reply, 'text/javascript; charset=utf-8', VIEWER_JS),
  );
  app.get('/ui/app.css', { schema: { hide: true } }, async (_req, reply) =>
    send(reply, 'text/css; charset=utf-8', VIEWER_CSS),
  );
  // browsers ask for it on every page: an empty answer, not a 404 in the console
  app.get('/favicon.ico', { schema: { hide: true } }, async (_req, reply) => reply.code(204).send());
  app.get('/ui/vendor/asciinema-player.min.js', { schema: { hide: true } }, async (_req, reply) =>
    send(reply, 'text/javascript; charset=utf-8', await playerFile('asciinema-player.min.js')),
  );
  app.get('/ui/vendor/asciinema-player.css', { schema: { hide: true } }, async (_req, reply) =>
    send(reply, 'text/css; charset=utf-8', await playerFile('asciinema-player.css')),
  );
}
