import type { FastifyInstance } from 'fastify';
import { AppError } from '../../../errors.js';
import { newsAudienceSize } from '../../../mail/audience.js';
import {
  BODY_MAX, campaignMessage, campaignProgress, createNewsDraft, findCampaign, listCampaigns, resumeCampaign, startCampaign, SUBJECT_MAX, type Campaign,
} from '../../../mail/campaigns.js';
import { compose, unsubscribeUrl, type ComposeSettings } from '../../../mail/compose.js';
import { field, type FieldErrors } from '../forms.js';
import type { AdminPages } from '../pages.js';

/** The preview is composed for this address; its own unsubscribe link is replaced by words. */
const PREVIEW_ADDRESS = 'someone@example.org';

function campaignId(text: string): number {
  if (!/^\d{1,15}$/.test(text)) throw new AppError('CAMPAIGN_NOT_FOUND', 404, `There is no news message ${text}.`);
  return Number(text);
}

/** Subject and text of a news message as staff typed them, with a message per field that is wrong. */
function readMessage(body: unknown): { subject: string; body: string; errors: FieldErrors } {
  const subject = field(body, 'subject');
  const text = field(body, 'body').replace(/\r\n?/g, '\n');
  const errors: FieldErrors = {};
  if (subject === '' || subject.length > SUBJECT_MAX) errors.subject = `Enter the subject (at most ${SUBJECT_MAX} characters).`;
  else if (/[\u0000-\u001f\u007f]/.test(subject)) errors.subject = 'The subject must be one line of text.';
  if (text === '' || text.length > BODY_MAX) errors.body = `Enter the text of the message (at most ${BODY_MAX.toLocaleString('en')} characters).`;
  return { subject, body: text, errors };
}

/**
 * News by mail: staff write a message (subject and plain text), look at its preview (exactly the
 * text part a recipient gets, footer, unsubscribe instructions and postal address included), then
 * send it to everyone who chose news. A campaign's page shows how far its send has got; release
 * notices (queued when a release is published) are listed and followed here too.
 */
export default async function newsRoutes(app: FastifyInstance, pages: AdminPages): Promise<void> {
  const settings: ComposeSettings = { publicUrl: app.config.publicUrl, from: app.config.mailFrom, postalAddress: app.config.companyPostalAddress, secret: app.config.mailSecret };

  const listPage = async (extra: Record<string, unknown> = {}) => ({
    title: 'News', campaigns: await listCampaigns(app.db), audience: await newsAudienceSize(app.db), ...extra,
  });

  const preview = async (campaign: Campaign) => {
    const request = await campaignMessage(app.jobs, {
      key: 'preview', template: campaign.kind === 'release' ? 'release-notice' : 'news', to: PREVIEW_ADDRESS, data: {}, campaign: { id: campaign.id, recipientId: 0 },
    });
    const message = compose(settings, request.template, PREVIEW_ADDRESS, request.data);
    return { subject: message.subject, text: String(message.text).replaceAll(unsubscribeUrl(settings, PREVIEW_ADDRESS), '[the recipient\'s own one-click link]') };
  };

  app.get('/news', async (request, reply) => pages.render(request, reply, 'news', await listPage()));

  app.post('/news', async (request, reply) => {
    const message = readMessage(request.body);
    if (Object.keys(message.errors).length) {
      return pages.render(request, reply, 'news', await listPage({ values: { subject: message.subject, body: message.body }, errors: message.errors }), 400);
    }
    const id = await createNewsDraft(app.db, message, new Date());
    request.log.info({ campaignId: id, via: 'admin area' }, 'news message written');
    return reply.redirect(`/admin/news/${id}`, 303);
  });

  app.get('/news/:id', async (request, reply) => {
    const id = campaignId((request.params as { id: string }).id);
    const campaign = await findCampaign(app.db, id);
    if (!campaign) throw new AppError('CAMPAIGN_NOT_FOUND', 404, `There is no news message ${id}.`);
    const draft = campaign.state === 'draft';
    return pages.render(request, reply, 'news-message', {
      title: draft ? 'Preview of a news message' : campaign.subject,
      campaign,
      preview: await preview(campaign),
      progress: draft ? null : await campaignProgress(app.db, id),
      audience: draft ? await newsAudienceSize(app.db) : null,
    });
  });

  app.post('/news/:id/send', async (request, reply) => {
    const id = campaignId((request.params as { id: string }).id);
    if (!(await findCampaign(app.db, id))) throw new AppError('CAMPAIGN_NOT_FOUND', 404, `There is no news message ${id}.`);
    const started = await startCampaign(app.jobs, id);
    if (started) request.log.info({ campaignId: id, via: 'admin area' }, 'news message sending');
    return reply.redirect(`/admin/news/${id}?done=${started ? 'news-sending' : 'news-started-before'}`, 303);
  });

  app.post('/news/:id/resume', async (request, reply) => {
    const id = campaignId((request.params as { id: string }).id);
    if (!(await resumeCampaign(app.jobs, id))) throw new AppError('CAMPAIGN_NOT_FOUND', 404, `There is no news message ${id} being sent.`);
    request.log.info({ campaignId: id, via: 'admin area' }, 'news message resumed');
    return reply.redirect(`/admin/news/${id}?done=news-resumed`, 303);
  });
}
