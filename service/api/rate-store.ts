// @fastify/rate-limit's counter kept in the broker's store, so `limits.session_rate_per_minute` holds
// across every replica sharing a PostgreSQL store (the plugin's own counter is per process). Fixed
// windows (one minute for the session routes); a window's rows are pruned two windows later.
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { Store } from '../store/store.js';

export function storeRateLimit(store: Store): FastifyRateLimitStoreCtor {
  let calls = 0;
  const make = (prefix: string): FastifyRateLimitStore => ({
    incr(key, callback, timeWindow) {
      const now = Date.now();
      const start = Math.floor(now / timeWindow) * timeWindow;
      store.countRate(`${prefix}|${key}`, new Date(start)).then(
        (current) => {
          callback(null, { current, ttl: start + timeWindow - now });
          if (++calls % 200 === 0) store.pruneRates(new Date(start - 2 * timeWindow)).catch(() => undefined);
        },
        (err: Error) => callback(err),
      );
    },
    child(routeOptions) {
      return make(`${routeOptions.method}:${routeOptions.path}`);
    },
  });
  return class {
    constructor() {
      return make('global');
    }
  } as unknown as FastifyRateLimitStoreCtor;
}
