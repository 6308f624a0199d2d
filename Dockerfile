# syntax=docker/dockerfile:1
# zgrid server / worker image. Build: docker build -t zgrid:0.1.0 .   (see docs/deploy.md)
#
# Stage 1 compiles TypeScript and the native modules (better-sqlite3 builds from source when no
# prebuilt binary matches, hence python3, make and g++; zeromq falls back to cmake), then drops the dev
# dependencies. Stage 2 is node:20-slim with dist/src, the production node_modules and nothing else.

FROM node:20-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ cmake ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY native ./native
# Dependencies first (a layer cached while only the sources change); --ignore-scripts skips `prepare`
# (tsc, the sources are not there yet) and `install`, so the native modules are built explicitly: the
# dependencies' by `npm rebuild`, zgrid's own (native/idle-memory) by its install script.
# `npm install`, not `npm ci`: the lock file lacks the other platforms' optional msgpackr-extract
# binaries (the registry it was made from has none), and `npm ci` refuses such a lock file.
RUN npm install --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 zeromq \
 && npm run install \
 && test -f native/idle-memory/build/Release/idle_memory.node
COPY tsconfig.json server-modules.cfg ./
COPY src ./src
COPY examples ./examples
COPY test ./test
COPY bench ./bench
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --ignore-scripts \
 && npm cache clean --force

FROM node:20-slim
ENV NODE_ENV=production \
    ZGRID_LOG_FORMAT=json
WORKDIR /app
COPY --from=build /app/package.json /app/server-modules.cfg ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# The addon through which an idle server gives its memory back (docs/deploy.md, "What the server keeps
# in memory").
COPY --from=build /app/native/idle-memory/build/Release/idle_memory.node ./native/idle-memory/build/Release/
# The example applications, for `zgrid worker --app-path /app/examples/apps` and `zgrid demo`.
COPY --from=build /app/examples/apps ./examples/apps
RUN ln -s /app/dist/src/cli/main.js /usr/local/bin/zgrid \
 && chmod +x /app/dist/src/cli/main.js \
 && mkdir -p /data \
 && chown node:node /data

# The `node` user (uid 1000) of the base image: never root.
USER node
VOLUME /data

# 5555 clients (DEFAULT), 5556 METRICS, 5557 STATUS, 5558 workers; 9464 only with --prometheus-port 9464.
EXPOSE 5555 5556 5557 5558 9464

# Asks the STATUS daemon; the token is ZGRID_SERVER_TOKEN, else the one the server generated in /data.
# With --curve, the probe takes the server's key pair from /data (--data-dir), which the server lets in.
# For a worker container (no server inside) disable it: docker run --no-healthcheck ...
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD node /app/dist/src/cli/main.js ruok --timeout 5000 --data-dir /data \
      --url "tcp://127.0.0.1:${ZGRID_STATUS_PORT:-5557}?token=${ZGRID_SERVER_TOKEN:-$(tail -n 1 /data/token 2>/dev/null)}" \
      || exit 1

ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["server", "--host", "0.0.0.0", "--data-dir", "/data"]
