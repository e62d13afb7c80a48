// The names clients use to reach the broker, for the generated server certificate's SANs.
import type { ResolvedConfig } from '../config/defaults.js';

/** public_url's host, listen.postgres.public_host and every listener host that is not a wildcard. */
export function brokerHostnames(config: Pick<ResolvedConfig, 'public_url' | 'listen'>): string[] {
  const names: string[] = [];
  if (config.public_url !== undefined) {
    try {
      names.push(new URL(config.public_url).hostname);
    } catch {
      // validated at load time; nothing to add from a URL that does not parse
    }
  }
  const { http, postgres, ssh } = config.listen;
  if (postgres?.public_host !== undefined) names.push(postgres.public_host);
  for (const listener of [http, postgres, ssh]) {
    if (listener && listener.host !== '0.0.0.0' && listener.host !== '::') names.push(listener.host);
  }
  return [...new Set(names)];
}
