import { fileURLToPath } from 'node:url';
import { Eta } from 'eta';

/** Templates stay in the source tree: from dist/server/mail/ this is server/mail/templates/. */
const TEMPLATES = fileURLToPath(new URL('../../../server/mail/templates/', import.meta.url));

const html = new Eta({ views: TEMPLATES, autoEscape: true, cache: true });
const text = new Eta({ views: TEMPLATES, autoEscape: false, cache: true, autoTrim: false });

/**
 * Every message Ferry sends: its kind decides whether it carries marketing headers and footer, and
 * whether an opted-out address gets it. Subjects live here, bodies in `<name>.txt.eta`/`.html.eta`.
 */
export const MAIL_TEMPLATES = {
  'trial-reminder': { kind: 'marketing', subject: (d: Record<string, unknown>) => `Your Ferry trial ends ${d.whenText}` },
  'trial-ended': { kind: 'marketing', subject: () => 'Your Ferry trial has ended' },
  'license-revoked': { kind: 'service', subject: () => 'Your Ferry license has been revoked' },
  // Campaigns (server/mail/campaigns.ts): the subject is the campaign's own.
  news: { kind: 'marketing', subject: (d: Record<string, unknown>) => String(d.subject) },
  'release-notice': { kind: 'marketing', subject: (d: Record<string, unknown>) => String(d.subject) },
} satisfies Record<string, { kind: MailKind; subject: (data: Record<string, unknown>) => string }>;

export type MailKind = 'marketing' | 'service';
export type TemplateName = keyof typeof MAIL_TEMPLATES | (string & {});

const registry: Record<string, { kind: MailKind; subject: (data: Record<string, unknown>) => string }> = { ...MAIL_TEMPLATES };

/** Features (the portal) add their own templates at start-up. */
export function registerTemplate(name: string, kind: MailKind, subject: (data: Record<string, unknown>) => string): void {
  registry[name] = { kind, subject };
}

export function templateKind(name: string): MailKind {
  const template = registry[name];
  if (!template) throw new Error(`no mail template "${name}"`);
  return template.kind;
}

export interface Rendered {
  subject: string;
  text: string;
  html: string;
}

/** Renders one message's body parts and subject, then wraps both parts in the layout. */
export function render(name: string, data: Record<string, unknown>): Rendered {
  const template = registry[name];
  if (!template) throw new Error(`no mail template "${name}"`);
  const subject = template.subject(data);
  return {
    subject,
    text: text.render('./layout.txt.eta', { ...data, subject, body: text.render(`./${name}.txt.eta`, data) }),
    html: html.render('./layout.html.eta', { ...data, subject, body: html.render(`./${name}.html.eta`, data) }),
  };
}
