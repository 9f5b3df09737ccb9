# ferry-server in a container: built in one stage, run from a second that holds only what runs.
#   docker build -t ferry-server .
#   docker run -v ferry-data:/data -e DATABASE_URL=… -e REDIS_URL=… -p 3000:3000 ferry-server
# See compose.yaml for the whole deployment (server, worker, MariaDB, Redis, a mail catcher).

FROM node:20.19-bookworm-slim AS build
WORKDIR /build
COPY package.json package-lock.json ./
# No install scripts: the optional native speed-ups of ssh2 need a compiler, and "prepare" would
# compile before the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY licensing licensing
# The agent's sources: the server's release code reads the agent's build facts and manifest types.
COPY agent agent
COPY server server
COPY reports reports
# The runtime gets the compiled code, the production dependencies, and the views, mail templates,
# stylesheets and migrations, which are read from the source tree at run time.
RUN node node_modules/typescript/bin/tsc -p . \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 && mkdir /runtime \
 && cp -r dist node_modules package.json /runtime/ \
 && find server -type f ! -name '*.ts' -exec cp --parents {} /runtime/ \;

FROM node:20.19-bookworm-slim AS runtime
ENV NODE_ENV=production \
    FERRY_DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=3000
WORKDIR /app
# Owned by root, run as "node": the program cannot change itself; only /data is writable.
COPY --from=build /runtime/ /app/
RUN mkdir -p /data && chown node:node /data && chmod 0700 /data
USER node
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "--enable-source-maps", "dist/server/main.js"]
CMD ["serve"]
