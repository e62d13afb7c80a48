// The GitHub side of approvals in one call, for broker.ts once the approvals service exists: the
// check-run channel (register with the service's channels), the webhook handler (AppDeps.githubApprovals)
// and the reviewed-migrations decorator around the service's Approver (what the gateways get).
import type { Logger } from 'pino';
import type { Approver } from '../../gateways/operation-flow.js';
import type { Store } from '../../store/store.js';
import { ReviewedMigrations } from '../reviewed-migrations.js';
import type { ApprovalDecider } from '../types.js';
import { CheckRunChannel } from './check-run-channel.js';
import type { GitHubClient } from './client.js';
import { GitHubApprovalWebhooks } from './webhooks.js';

export function githubApprovals(o: {
  client: GitHubClient;
  decider: ApprovalDecider;
  /** the approvals service's Approver: asks humans */
  approver: Approver;
  store: Pick<Store, 'getSession'>;
  logger: Logger;
}): {
  channel: CheckRunChannel;
  webhooks: GitHubApprovalWebhooks;
  approver: Approver;
  migrations: ReviewedMigrations;
} {
  const logger = o.logger.child({ component: 'github-approvals' });
  const migrations = new ReviewedMigrations({
    inner: o.approver,
    client: o.client,
    logger,
    session: async (id) => {
      const s = await o.store.getSession(id);
      return s ? { grants: s.grants, identity: s.identity } : null;
    },
  });
  return {
    channel: new CheckRunChannel({ client: o.client, logger, decider: o.decider }),
    webhooks: new GitHubApprovalWebhooks({ client: o.client, decider: o.decider, logger }),
    approver: migrations,
    migrations,
  };
}
