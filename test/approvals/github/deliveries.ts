// Webhook deliveries as GitHub sends them: bodies from GitHub's own example payloads
// (@octokit/webhooks-examples), adjusted to the case, and signed with the App's webhook secret
// (X-Hub-Signature-256: sha256=HMAC-SHA256(secret, raw body)).
import { createHmac, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
type Json = Record<string, unknown>;
const definitions = require('@octokit/webhooks-examples') as { name: string; examples: Json[] }[];

/** A deep copy of GitHub's first example of `event` with `action`. */
export function example(event: string, action: string): Json {
  const found = definitions.find((d) => d.name === event)?.examples.find((e) => e.action === action);
  if (!found) throw new Error(`no example ${event}.${action}`);
  return structuredClone(found);
}

export const sign = (secret: string, body: string): string =>
  `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

export interface Delivery {
  event: string;
  body: string;
  headers: Record<string, string>;
}

export function delivery(
  event: string,
  payload: unknown,
  secret: string,
  id: string = randomUUID(),
): Delivery {
  const body = JSON.stringify(payload);
  return {
    event,
    body,
    headers: {
      'content-type': 'application/json',
      'user-agent': 'GitHub-Hookshot/test',
      'x-github-event': event,
      'x-github-delivery': id,
      'x-github-hook-id': '1',
      'x-hub-signature-256': sign(secret, body),
    },
  };
}

export function post(url: string, d: Delivery, override: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/v1/github/webhook`, {
    method: 'POST',
    headers: { ...d.headers, ...override },
    body: d.body,
  });
}
