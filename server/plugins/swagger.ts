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
