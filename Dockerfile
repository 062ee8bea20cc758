# The servetune operator image. Node 24 runs the TypeScript sources directly, so there is no build step:
# the image holds package.json, the production dependencies, bin/ and src/.
#
#   docker build -t servetune:0.1.0 .
#   docker run --rm servetune:0.1.0 --help
#
# The entrypoint is `node --no-memory-protection-keys bin/servetune.js operator`; arguments are the operator's flags (the Helm chart in
# charts/servetune sets them). The same image runs twins (`servetune twin`, port 8000): the chart overrides the
# command for them (twin.enabled). It runs as the image's unprivileged `node` user (uid 1000) and writes only
# to /tmp (Node's compile cache), so it works with a read-only root filesystem and /tmp as an emptyDir.
# --no-memory-protection-keys: on CPUs with PKU, V8's JIT-page protection can abort a process whose worker
# threads compile code (the sweeps do); see bin/servetune.js.

ARG NODE_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The lockfile records every platform's optional packages, so `npm ci` accepts it (test/unit/setup/lockfile.test.ts).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin/ ./bin/
COPY src/ ./src/
USER 1000:1000
EXPOSE 8080 8000
ENTRYPOINT ["node", "--no-memory-protection-keys", "bin/servetune.js", "operator"]
