import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import type Mail from 'nodemailer/lib/mailer/index.js';

export interface SentInfo {
  messageId: string;
}

/** Where messages go: an SMTP server, or (without SMTP_URL) .eml files in an outbox folder. */
export interface MailTransport {
  readonly description: string;
  send(message: Mail.Options): Promise<SentInfo>;
  close(): void;
}

/**
 * Connections kept open to the SMTP server (a new connection per message costs a handshake each),
 * per transport: service and marketing mail each have their own, so that a long marketing send
 * never holds a password link back in the other's connection pool.
 */
export function smtpTransport(smtpUrl: string, connections = 4): MailTransport {
  const url = new URL(smtpUrl);
  url.searchParams.set('pool', 'true');
  url.searchParams.set('maxConnections', String(connections));
  const transporter = nodemailer.createTransport(url.toString());
  const { hostname, port } = new URL(smtpUrl);
  return {
    description: `SMTP ${hostname}:${port}`,
    async send(message) {
      const info = await transporter.sendMail(message);
      return { messageId: info.messageId };
    },
    close: () => transporter.close(),
  };
}

/** Nothing is silently dropped: each message is written whole, headers and all, as a file. */
export function outboxTransport(dir: string): MailTransport {
  const transporter = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  return {
    description: `outbox folder ${dir}`,
    async send(message) {
      const info = await transporter.sendMail(message);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${info.messageId.replace(/[^A-Za-z0-9.@-]/g, '')}.eml`;
      await writeFile(join(dir, name), info.message as Buffer, { mode: 0o600 });
      return { messageId: info.messageId };
    },
    close: () => transporter.close(),
  };
}
