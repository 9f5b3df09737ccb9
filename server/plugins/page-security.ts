import type { FastifyHelmetOptions } from '@fastify/helmet';

/**
 * Helmet for Ferry's own server-rendered pages (MyAccount, the admin area): a CSP that allows
 * nothing but this site's stylesheet, images and form targets (the pages need no script), no
 * framing, HSTS when served over HTTPS. The referrer policy is each area's choice.
 */
export function pageSecurityHeaders(https: boolean, referrerPolicy: 'no-referrer' | 'same-origin'): FastifyHelmetOptions {
  return {
    global: true,
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
        baseUri: ["'none'"],
        ...(https ? { upgradeInsecureRequests: [] } : {}),
      },
    },
    strictTransportSecurity: https ? { maxAge: 31_536_000 } : false,
    referrerPolicy: { policy: referrerPolicy },
  };
}
