# pagoda on CPU. Mount a directory with GGUF files at /models (the first *.gguf is served), or pass --model.
#   docker build -t pagoda .
#   docker run -p 8080:8080 -v "$PWD/models:/models" pagoda
# The build stage compiles node-llama-cpp's addon with pagoda's patch (npm's prepare step needs g++ and git).
FROM node:20-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends g++ git && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY tools ./tools
COPY patches ./patches
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# npm ci's prepare step builds the patched addon and compiles src/ to dist/ (it needs the type checker, a dev
# dependency); the dev dependencies are pruned afterwards.
RUN npm ci --no-audit --no-fund && npm run build:addon -- --check && npm prune --omit=dev && npm cache clean --force

FROM node:20-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production \
    PAGODA_HOST=0.0.0.0 \
    PAGODA_PORT=8080 \
    PAGODA_MODELS_DIR=/models \
    PAGODA_CACHE_DIR=/var/cache/pagoda

COPY package.json package-lock.json ./
COPY --from=build /app/node_modules ./node_modules

COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY src ./src
COPY config ./config

RUN mkdir -p /models /var/cache/pagoda && chown -R node:node /models /var/cache/pagoda
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s CMD node -e "fetch('http://127.0.0.1:8080/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "bin/pagoda.js"]
