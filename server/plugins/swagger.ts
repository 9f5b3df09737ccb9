import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';

export default fp(
  async (app) => {
    await app.register(swagger, {
      openapi: {
        info: {
          title: 'Ferry licensing API',
          version: '1',
          description: 'Trials, activations, validation and usage reports for the ferry agent; admin calls for staff.',
        },
        tags: [
          { name: 'agent', description: 'What the ferry agent calls: trials, activations, validation, usage reports, the public keys' },
          { name: 'admin', description: 'Staff calls, with Authorization: Bearer <ADMIN_TOKEN>' },
          { name: 'ops', description: 'Probes and metrics for the people who run the server' },
        ],
        components: {
          securitySchemes: {
            licenseToken: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'the license token of an activation' },
            adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' },
          },
        },
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
  },
  { name: 'swagger' },
);
