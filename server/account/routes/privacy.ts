import type { FastifyInstance } from 'fastify';
import type { Portal } from '../plugin.js';

/**
 * The privacy policy: what Ferry collects, why, and for how long. The periods are the running
 * retention settings, so the page says what the retention job does.
 */
const HOUR = 3_600_000;

/** A retention period as people read it: "90 days", "36 hours". */
export function periodText(ms: number): string {
  const [size, unit] = ms % (24 * HOUR) === 0 ? [24 * HOUR, 'day'] : [HOUR, 'hour'];
  const n = Math.max(1, Math.round(ms / size));
  return `${n} ${unit}${n === 1 ? '' : 's'}`;
}

export default async function privacyRoutes(app: FastifyInstance, portal: Portal): Promise<void> {
  app.get('/privacy', async (request, reply) => {
    const c = app.config;
    return portal.render(request, reply, 'privacy', {
      title: 'Privacy policy',
      retention: {
        cancelledAccounts: periodText(c.retainCancelledAccountsMs),
        trialEmail: periodText(c.retainTrialEmailMs),
        ipAddresses: periodText(c.retainIpAddressesMs),
        trialUsage: periodText(c.retainLapsedTrialUsageMs),
        addressSignals: periodText(c.retainAddressSignalsMs),
      },
      postalAddress: c.companyPostalAddress,
    });
  });
}
