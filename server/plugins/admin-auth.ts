import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../errors.js';

declare module 'fastify' {
  interface FastifyInstance {
    requireAdmin: (request: FastifyRequest) => Promise<void>;
  }
}

const digest = (text: string) => createHash('sha256').update(text).digest();

/** Whether `given` is the admin token, compared in constant time (digests, so lengths match too). */
export function isAdminToken(given: string, adminToken: string): boolean {
  return timingSafeEqual(digest(given), digest(adminToken));
}

/** `Authorization: Bearer <ADMIN_TOKEN>`, compared in constant time. Also the admin area's sign-in. */
export default fp(
  async (app) => {
    app.decorate('requireAdmin', async (request: FastifyRequest) => {
      const given = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1];
      if (given === undefined || !isAdminToken(given, app.config.adminToken)) {
        throw new AppError('ADMIN_AUTH_REQUIRED', 401, 'this call needs Authorization: Bearer <ADMIN_TOKEN>');
      }
    });
  },
  { name: 'admin-auth', dependencies: ['config'] },
);
