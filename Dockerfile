# pagoda on CPU. Mount a directory with GGUF files at /models (the first *.gguf is served), or pass --model.
#   docker build -t pagoda .
#   docker run -p 8080:8080 -v "$PWD/models:/models:ro" pagoda
# The CUDA image is deploy/docker/Dockerfile.cuda; Kubernetes manifests are in deploy/k8s.
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends g++ git && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY tools ./tools
COPY patches ./patches
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# npm ci's prepare step builds the patched addon and bundles src/ into dist/ (it needs the type checker and
# esbuild, dev dependencies); the dev dependencies are pruned afterwards.
# The image runs on other machines than the one building it: llama.cpp's prebuilt CPU variants, one per CPU
# family, stay (PAGODA_LLAMA_BUILD=source compiles for the builder's CPU family instead; see the README).
ARG PAGODA_LLAMA_BUILD=prebuilt
RUN PAGODA_LLAMA_BUILD=$PAGODA_LLAMA_BUILD npm ci --no-audit --no-fund && npm run build:addon -- --check && npm prune --omit=dev && npm cache clean --force
# npm installs llama.cpp prebuilds for every GPU and architecture (CUDA 13 and its CUDA 12 fallback, Vulkan, arm):
# about 650 MB this image never loads. Only this architecture's CPU build stays. After the prune, which restores them.
RUN keep="linux-$(node -p process.arch)" && cd node_modules/@node-llama-cpp && for package in *; do \
      if [ "$package" != "$keep" ]; then rm -rf "$package"; fi; \
    done && test -f "$keep/bins/$keep/llama-addon.pagoda-stamp"

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    PAGODA_HOST=0.0.0.0 \
    PAGODA_PORT=8080 \
    PAGODA_GPU=false \
    PAGODA_MODELS_DIR=/models \
    PAGODA_CACHE_DIR=/var/cache/pagoda

# The bundle only: without src/, bin/pagoda.js always runs dist/ and never transpiles at start-up.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin

# The node user (uid 1000), numeric so that Kubernetes' runAsNonRoot can verify it.
RUN mkdir -p /models /var/cache/pagoda && chown 1000:1000 /var/cache/pagoda
USER 1000:1000
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PAGODA_PORT}/health`).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "bin/pagoda.js"]
