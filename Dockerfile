# syntax=docker/dockerfile:1
# The broker image: build with the full toolchain, run on a slim base as a non-root user with only the
# production dependencies and the compiled broker. The base is pinned to the exact Node release the
# test suite runs on; change both together.
#   docker build -t hoop-broker .
#   docker run -v ./config.yaml:/etc/hoop/config.yaml:ro -p 8080:8080 -p 6432:6432 hoop-broker

FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no dependency runs code at install, and `prepare` waits until the sources are here
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY service ./service
RUN npm run build:service && npm prune --omit=dev --ignore-scripts

FROM node:20.20.2-bookworm-slim AS runtime
ENV NODE_ENV=production \
    HOOP_CONFIG=/etc/hoop/config.yaml
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/build ./build
# data_dir for the embedded store and generated TLS material (mount a volume; replicas use store.url)
RUN mkdir -p /data /etc/hoop && chown 10001:10001 /data
USER 10001:10001
VOLUME ["/data"]
# 8080 HTTP API, 6432 PostgreSQL gateway
EXPOSE 8080 6432
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "build/service/cli.js", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "build/service/cli.js"]
CMD ["serve"]
