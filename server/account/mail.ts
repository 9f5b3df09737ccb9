import { registerTemplate } from '../mail/templates.js';

/**
 * The portal's messages, all service notices (sent whatever the customer's mail choices). Registered
 * when this module is imported: the portal, the erasure and so the retention job all import it.
 * Bodies are `server/mail/templates/<name>.txt.eta` and `.html.eta`.
 */
export const ACCOUNT_TEMPLATES = {
  verifyEmail: 'verify-email',
  accountExists: 'account-exists',
  emailInUse: 'email-in-use',
  passwordReset: 'password-reset',
  passwordChanged: 'password-changed',
  emailChanged: 'email-changed',
  purchaseReceipt: 'purchase-receipt',
  seatsReceipt: 'seats-receipt',
  accountCancelled: 'account-cancelled',
  accountDeleted: 'account-deleted',
} as const;

registerTemplate(ACCOUNT_TEMPLATES.verifyEmail, 'service', (d) => (d.change ? 'Confirm your new email address for Ferry' : 'Confirm your email address for Ferry'));
registerTemplate(ACCOUNT_TEMPLATES.accountExists, 'service', () => 'You already have a Ferry account');
registerTemplate(ACCOUNT_TEMPLATES.emailInUse, 'service', () => 'Someone tried to use your address for another Ferry account');
registerTemplate(ACCOUNT_TEMPLATES.passwordReset, 'service', () => 'Choose a new Ferry password');
registerTemplate(ACCOUNT_TEMPLATES.passwordChanged, 'service', () => 'Your Ferry password was changed');
registerTemplate(ACCOUNT_TEMPLATES.emailChanged, 'service', () => 'The email address of your Ferry account was changed');
registerTemplate(ACCOUNT_TEMPLATES.purchaseReceipt, 'service', (d) => `Your Ferry license (order ${String(d.orderId)})`);
registerTemplate(ACCOUNT_TEMPLATES.seatsReceipt, 'service', (d) => `More seats for your Ferry license (order ${String(d.orderId)})`);
registerTemplate(ACCOUNT_TEMPLATES.accountCancelled, 'service', () => 'Your Ferry subscription is cancelled');
registerTemplate(ACCOUNT_TEMPLATES.accountDeleted, 'service', () => 'Your Ferry account has been deleted');

/** How long mailed links work. */
export const LINK_LIFETIME = {
  verifyEmail: { ms: 48 * 3_600_000, text: '48 hours' },
  resetPassword: { ms: 3_600_000, text: 'one hour' },
};

export function formatDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}

export function formatDateTime(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}
