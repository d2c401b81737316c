import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, type TestContext, test } from "node:test";
import { GgmlType, getLlama, type Llama, LlamaLogLevel, type LlamaModel } from "node-llama-cpp";
import { getInternals, isPatchedContext } from "../../src/engine/llama-internals.ts";
import { writeSyntheticLlama, writeSyntheticModel } from "../../src/gguf/synthetic-model.ts";
import { type GgufModelInfo, readGgufModelInfo } from "../../src/plan/gguf-model-info.ts";
import { type KvCacheType, type MemoryPlan, planMemory } from "../../src/plan/memory-plan.ts";
import { type KvLayout, SERVER_CONTEXT_DEFAULTS, serverPlanOptions } from "../../src/plan/server-plan-options.ts";

const STORIES_PATH = new URL("../../../shared/models/stories260K.gguf", import.meta.url).pathname;
const MIB = 1024 * 1024;
/** llama.cpp prints buffer sizes in MiB with two decimals: half a unit, plus a byte for float rounding. */
const LOG_PRECISION_BYTES = 0.005 * MIB + 1;
const TOLERANCE = 0.05;

interface Config {
  /** Defaults to the server's layout, the shared pool. */
  readonly kvLayout?: KvLayout;
  readonly contextSize: number;
  readonly sequences: number;
  readonly batchSize: number;
  /** Cells of the shared pool; defaults to contextSize × sequences, as the server's. */
  readonly kvCacheTokens?: number;
  /** Defaults to the server's choice on CPU, which the plan must make too. */
  readonly flashAttention?: boolean;
  readonly kvType?: KvCacheType;
}

/**
 * In each layout: the server's defaults, a single small sequence, odd sizes that exercise padding, and flash
 * attention the other way round; in the pool, one smaller than every sequence's context.
 */
const CONFIGS: readonly Config[] = [
  { contextSize: 2048, sequences: 8, batchSize: 512 },
  { contextSize: 256, sequences: 1, batchSize: 32 },
  { contextSize: 1000, sequences: 3, batchSize: 100 },
  { contextSize: 1024, sequences: 4, batchSize: 512, kvCacheTokens: 1500, flashAttention: false },
  { kvLayout: "slabs", contextSize: 2048, sequences: 8, batchSize: 512 },
  { kvLayout: "slabs", contextSize: 256, sequences: 1, batchSize: 32 },
  { kvLayout: "slabs", contextSize: 1000, sequences: 3, batchSize: 100 },
  { kvLayout: "slabs", contextSize: 1024, sequences: 4, batchSize: 512, flashAttention: true },
];
/** Quantized caches need head sizes that are whole q8_0/q4_0 blocks (32), so only some models get these. */
const QUANTIZED_CONFIGS: readonly Config[] = [
  { kvLayout: "slabs", contextSize: 2048, sequences: 2, batchSize: 512, kvType: "q8_0" },
  { kvLayout: "slabs", contextSize: 1024, sequences: 2, batchSize: 128, kvType: "q4_0" },
  { contextSize: 1024, sequences: 2, batchSize: 128, kvType: "q8_0" },
];

let dir: string;
let llama: Llama;
let logLines: string[] = [];
let onLogLine: ((line: string) => void) | null = null;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "pagoda-plan-vs-llama-"));
  // A logger of our own at debug level: llama.cpp reports every buffer it allocates at info level.
  llama = await getLlama({
    gpu: false,
    // As the server loads it: a missing prebuilt binary fails the test instead of compiling llama.cpp.
    build: "never",
    logLevel: LlamaLogLevel.debug,
    logger: (_level, message) => {
      logLines.push(message);
      onLogLine?.(message);
    },
  });
});

after(async () => {
  await llama?.dispose();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

interface LoggedContext {
  readonly contextTokens: number;
  readonly kvCells: number;
  readonly kvBytes: number;
  readonly outputBytes: number;
  readonly computeBytes: number;
}

function parseContextLog(lines: readonly string[]): LoggedContext {
  // Only this context's lines: node-llama-cpp's own no-alloc estimate may have built one before it.
  let start = 0;
  lines.forEach((line, index) => {
    if (line.includes("constructing llama_context")) start = index;
  });
  const own = lines.slice(start);
  const mib = (pattern: RegExp): number => {
    const match = own.map((line) => pattern.exec(line)).find((found) => found !== null);
    assert.ok(match, `llama.cpp logged no line matching ${pattern}`);
    return Number(match[1]) * MIB;
  };
  let kvCells = 0;
  let kvBytes = 0;
  for (const line of own) {
    // "llama_kv_cache: size = 10.00 MiB ( 2048 cells, 5 layers, 8/8 seqs), …": cells per stream and streams.
    const kv = /llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +\d+ layers, +\d+\/(\d+) seqs\)/.exec(line);
    if (kv !== null) {
      kvCells += Number(kv[2]) * Number(kv[3]);
      kvBytes += Number(kv[1]) * MIB;
    }
  }
  assert.ok(kvCells > 0, "llama.cpp logged no KV cache");
  const nCtx = own.map((line) => /n_ctx += (\d+)/.exec(line)).find((found) => found !== null);
  return {
    contextTokens: Number(nCtx?.[1]),
    kvCells,
    kvBytes,
    outputBytes: mib(/CPU +output buffer size = +([\d.]+) MiB/),
    computeBytes: mib(/CPU compute buffer size = +([\d.]+) MiB/),
  };
}

/** Resolves once llama.cpp has logged the end of its buffer reservation (log lines arrive asynchronously). */
function nextReservationLogged(): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("llama.cpp never logged its reservation")), 30_000);
    onLogLine = (line) => {
      if (line.includes("reserve took")) {
        clearTimeout(timer);
        onLogLine = null;
        resolve();
      }
    };
  });
}

const fmt = (bytes: number): string => (bytes / MIB).toFixed(3);
const ratio = (planned: number, actual: number): string => `${((planned / actual - 1) * 100).toFixed(2)}%`;

function assertClose(name: string, planned: number, actual: number, slack = 0): void {
  const allowed = Math.max(actual * TOLERANCE, slack);
  assert.ok(
    Math.abs(planned - actual) <= allowed,
    `${name}: planned ${planned} B, llama.cpp ${actual} B (allowed ±${allowed})`,
  );
}

const isShared = (config: Config): boolean => (config.kvLayout ?? "shared") === "shared";

/** The plan `pagoda plan` prints for a server started with this configuration. */
function serverPlan(info: GgufModelInfo, config: Config): MemoryPlan {
  const forced = config.flashAttention;
  return planMemory(
    info,
    serverPlanOptions({
      ...SERVER_CONTEXT_DEFAULTS,
      kvLayout: config.kvLayout ?? "shared",
      ctxSize: config.contextSize,
      parallel: config.sequences,
      batchSize: config.batchSize,
      ...(config.kvCacheTokens === undefined ? {} : { kvCacheTokens: config.kvCacheTokens }),
      kvType: config.kvType ?? "f16",
      flashAttn: forced === undefined ? "auto" : forced ? "on" : "off",
    }),
  );
}

/**
 * The context as the engine creates it (src/engine/llama-engine.ts): the native one, sized `kvCacheTokens` with one
 * KV stream for the shared pool, `contextSize` × `sequences` with one slab per sequence otherwise, and flash
 * attention as its "auto" picks it on CPU (on for the pool and for quantized caches, which need it).
 */
async function createServerContext(model: LlamaModel, config: Config): Promise<{ dispose(): Promise<void> }> {
  const kvType = config.kvType ?? "f16";
  const ggmlType = GgmlType[kvType.toUpperCase() as keyof typeof GgmlType];
  const options = {
    contextSize: isShared(config)
      ? (config.kvCacheTokens ?? config.contextSize * config.sequences)
      : config.contextSize * config.sequences,
    batchSize: Math.max(config.batchSize, config.sequences),
    sequences: config.sequences,
    threads: 1,
    flashAttention: config.flashAttention ?? (kvType !== "f16" || isShared(config)),
    kvUnified: isShared(config),
    kvCacheKeyType: ggmlType,
    kvCacheValueType: ggmlType,
  };
  const native = getInternals(model).createContext(options);
  if (!(await native.init())) throw new Error("llama.cpp could not create the context");
  if (isShared(config) && !(isPatchedContext(native) && native.isKvUnified())) {
    await native.dispose();
    throw new Error("the context was not created with a shared KV pool");
  }
  return native;
}

async function compareOne(t: TestContext, model: LlamaModel, plan: MemoryPlan, config: Config): Promise<void> {
  logLines = [];
  const logged = nextReservationLogged();
  const context = await createServerContext(model, config);
  try {
    await logged;
    const actual = parseContextLog(logLines);
    const actualTotal = model.size + actual.kvBytes + actual.outputBytes + actual.computeBytes;
    const c = plan.context;
    t.diagnostic(
      `${isShared(config) ? "pool" : "slabs"} ${config.contextSize}×${config.sequences}/${config.batchSize} ` +
        `${c.kvType} ${c.flashAttention ? "fa" : "-"} | ${fmt(plan.kvBytes)}/${fmt(actual.kvBytes)} | ` +
        `${fmt(plan.computeBytes)}/${fmt(actual.computeBytes)} | ${fmt(plan.outputBytes)}/${fmt(actual.outputBytes)} | ` +
        `${fmt(plan.totalBytes)}/${fmt(actualTotal)}`,
    );
    assert.equal(c.isKvUnified, isShared(config), "layout");
    assert.equal(
      c.flashAttention,
      config.flashAttention ?? (c.kvType !== "f16" || isShared(config)),
      "flash attention",
    );
    assert.equal(c.contextTokens, actual.contextTokens, "n_ctx");
    assert.equal(plan.numKvCells, actual.kvCells, "KV cells");
    assert.ok(
      Math.abs(plan.kvBytes - actual.kvBytes) <= LOG_PRECISION_BYTES,
      `KV bytes: planned ${plan.kvBytes}, logged ${actual.kvBytes}`,
    );
    assertClose("compute buffer", plan.computeBytes, actual.computeBytes, LOG_PRECISION_BYTES);
    assertClose("output buffer", plan.outputBytes, actual.outputBytes, LOG_PRECISION_BYTES);
    assertClose("total", plan.totalBytes, actualTotal);
  } finally {
    await context.dispose();
  }
}

/** node-llama-cpp's own estimate models its LlamaContext, one slab per sequence: compared with the slab plans only. */
async function compareWithEstimate(t: TestContext, model: LlamaModel, plan: MemoryPlan, config: Config): Promise<void> {
  const c = plan.context;
  const ggmlType = GgmlType[c.kvType.toUpperCase() as keyof typeof GgmlType];
  const estimate = {
    contextSize: config.contextSize,
    sequences: config.sequences,
    batchSize: config.batchSize,
    modelGpuLayers: 0,
    flashAttention: c.flashAttention,
    kvCacheKeyType: ggmlType,
    kvCacheValueType: ggmlType,
  };
  const v2 = await model.fileInsights.estimateContextResourceRequirementsV2(estimate);
  const legacy = model.fileInsights.estimateContextResourceRequirements(estimate);
  t.diagnostic(
    `  KV+compute plan vs estimateV2 ${plan.kvBytes + plan.computeBytes} vs ${v2.cpuRam} B ` +
      `(${plan.kvBytes + plan.computeBytes - v2.cpuRam} B) | legacy estimate ${fmt(legacy.cpuRam)} MiB ` +
      `(${ratio(legacy.cpuRam, v2.cpuRam)})`,
  );
  assertClose("KV + compute vs estimateContextResourceRequirementsV2", plan.kvBytes + plan.computeBytes, v2.cpuRam);
}

async function compareWithLlama(
  t: TestContext,
  label: string,
  modelPath: string,
  configs: readonly Config[],
): Promise<MemoryPlan[]> {
  const info = await readGgufModelInfo(modelPath);
  const model: LlamaModel = await llama.loadModel({ modelPath });
  const modelBytes = model.size;
  const plans: MemoryPlan[] = [];
  t.diagnostic(
    `${label}: weights planned ${info.tensors.reduce((sum, tensor) => sum + tensor.bytes, 0)} B, node-llama-cpp model.size ${model.size} B`,
  );
  t.diagnostic("layout ctx×seq/batch kv fa | KV MiB plan/llama | compute MiB | output MiB | total MiB");
  try {
    const canShare = getInternals(model).isPatched;
    if (!canShare) t.diagnostic("the addon lacks pagoda's patch (npm run build:addon): shared-pool configs skipped");
    for (const config of configs) {
      const plan = serverPlan(info, config);
      plans.push(plan);
      if (isShared(config) && !canShare) continue;
      await compareOne(t, model, plan, config);
      if (!isShared(config)) await compareWithEstimate(t, model, plan, config);
    }
  } finally {
    await model.dispose();
  }
  assert.equal(plans[0]!.weightsBytes, modelBytes);
  return plans;
}

test("stories260K: KV is 640 bytes per token and every buffer matches llama.cpp's own allocation", async (t) => {
  const plans = await compareWithLlama(t, "stories260K", STORIES_PATH, CONFIGS);
  for (const plan of plans) assert.equal(plan.kvBytesPerToken, 640);
});

test("the default synthetic model's plan matches llama.cpp, quantized KV caches included", async (t) => {
  const path = join(dir, "synthetic-default.gguf");
  await writeSyntheticLlama(path);
  const [plan] = await compareWithLlama(t, "synthetic default (v2048 d128 l4 h4/kv2)", path, [
    ...CONFIGS,
    ...QUANTIZED_CONFIGS,
  ]);
  assert.equal(plan!.kvBytesPerToken, 4 * 2 * 2 * 32 * 2);
});

test("a bigger grouped-query synthetic model's plan matches llama.cpp, Hadamard-rotated q8_0 cache included", async (t) => {
  const path = join(dir, "synthetic-gqa.gguf");
  await writeSyntheticLlama(path, {
    vocabSize: 8192,
    embeddingLength: 512,
    blockCount: 6,
    headCount: 8,
    headCountKv: 2,
    feedForwardLength: 1376,
  });
  const [plan] = await compareWithLlama(t, "synthetic GQA (v8192 d512 l6 h8/kv2 ff1376)", path, [
    ...CONFIGS,
    ...QUANTIZED_CONFIGS,
  ]);
  assert.equal(plan!.kvBytesPerToken, 6 * 2 * 2 * 64 * 2);
});

test("a mixture-of-experts model's plan matches llama.cpp and counts only routed experts as active", async (t) => {
  const path = join(dir, "synthetic-moe.gguf");
  const written = await writeSyntheticModel(path, {
    expertCount: 8,
    expertUsedCount: 2,
    vocabSize: 1024,
    embeddingLength: 128,
    blockCount: 2,
    feedForwardLength: 512,
  });
  const [plan] = await compareWithLlama(t, "synthetic MoE (8 experts, 2 used)", path, [
    ...CONFIGS,
    QUANTIZED_CONFIGS[0]!,
  ]);
  const expertParameters = 2 * 3 * 128 * 512 * 8;
  assert.equal(plan!.numExpertParameters, expertParameters);
  assert.equal(plan!.numActiveParameters, plan!.numParameters - expertParameters * (6 / 8));
  assert.equal(plan!.numParameters, written.parameterCount);
  assert.equal(plan!.numActiveParameters, written.activeParameterCount);
});

test("a qwen2 model with Q4_0 weights and tied embeddings is planned to the byte", async (t) => {
  const path = join(dir, "synthetic-qwen2-q4.gguf");
  const written = await writeSyntheticModel(path, {
    architecture: "qwen2",
    tensorType: "Q4_0",
    tiedEmbeddings: true,
    vocabSize: 4096,
    embeddingLength: 256,
    blockCount: 3,
    headCount: 8,
    headCountKv: 2,
    feedForwardLength: 704,
  });
  const [plan] = await compareWithLlama(t, "synthetic qwen2 Q4_0 tied (v4096 d256 l3 h8/kv2 ff704)", path, CONFIGS);
  assert.equal(
    plan!.weightsBytes,
    written.tensors.reduce((sum, tensor) => sum + tensor.byteLength, 0),
  );
  assert.deepEqual(
    plan!.weightsByType.map((group) => group.type).sort(),
    [...new Set(written.tensors.map((tensor) => tensor.type))].sort(),
  );
});
