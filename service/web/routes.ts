// The read-only audit viewer at /ui/: a page, a script and a style sheet, all static. Data comes from
// the JSON API behind the admin token; a strict Content-Security-Policy allows only this origin's
// script and style, and no framing.
import type { FastifyInstance, FastifyReply } from 'fastify';
import { VIEWER_CSS, VIEWER_HTML, VIEWER_JS } from './viewer-assets.js';

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

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
}
