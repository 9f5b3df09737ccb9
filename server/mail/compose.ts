import { createHmac, timingSafeEqual } from 'node:crypto';
import type Mail from 'nodemailer/lib/mailer/index.js';
import { render, templateKind } from './templates.js';

export const PRODUCT_NAME = 'Ferry';

export interface ComposeSettings {
  publicUrl: string;
  from: string;
  postalAddress: string;
  /** Keys the unsubscribe links: a link works for its own address only. */
  secret: string;
}

function unsubscribeToken(secret: string, email: string): string {
  return createHmac('sha256', secret).update(`unsubscribe:${email.toLowerCase()}`).digest('base64url').slice(0, 32);
}

/** The one-click link of an address: no login, so the address and a keyed check travel in it. */
export function unsubscribeUrl(settings: Pick<ComposeSettings, 'publicUrl' | 'secret'>, email: string): string {
  const e = Buffer.from(email.toLowerCase()).toString('base64url');
  return `${settings.publicUrl}/unsubscribe?e=${e}&t=${unsubscribeToken(settings.secret, email)}`;
}

/** The address an unsubscribe link stands for, or null when the link was altered. */
export function readUnsubscribeLink(secret: string, e: string, t: string): string | null {
  const email = Buffer.from(e, 'base64url').toString('utf8');
  if (!/^[^\s@]+@[^\s@]+$/.test(email)) return null;
  const expected = Buffer.from(unsubscribeToken(secret, email));
  const given = Buffer.from(t);
  return expected.length === given.length && timingSafeEqual(expected, given) ? email : null;
}

/**
 * A whole message from a template: both parts in the layout, and for marketing mail the
 * unsubscribe instructions, the one-click link, the RFC 8058 headers and the postal address.
 */
export function compose(settings: ComposeSettings, template: string, to: string, data: Record<string, unknown>): Mail.Options & { subject: string } {
  const marketing = templateKind(template) === 'marketing';
  const common = {
    product: PRODUCT_NAME,
    accountUrl: `${settings.publicUrl}/account`,
    postalAddress: settings.postalAddress,
    marketing,
    unsubscribeUrl: marketing ? unsubscribeUrl(settings, to) : null,
  };
  const { subject, text, html } = render(template, { ...common, ...data });
  const headers: Record<string, string> = {};
  if (marketing) {
    headers['List-Unsubscribe'] = `<${common.unsubscribeUrl}>`;
    headers['List-Unsubscribe-Post'] = 'List-Unsubscribe=One-Click';
  }
  return { from: settings.from, to, subject, text, html, headers };
}
