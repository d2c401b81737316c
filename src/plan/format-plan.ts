import { formatBytes } from "../gguf/format-bytes.ts";
import type { MemoryPlan } from "./memory-plan.ts";

// The server's startup summary imports it from here, beside the plan it formats.
export { formatBytes } from "../gguf/format-bytes.ts";

const grouped = (value: number): string => value.toLocaleString("en-US");

function table(rows: readonly (readonly string[])[], rightAligned: readonly boolean[]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map(
    (row) =>
      "  " +
      row
        .map((cell, column) => (rightAligned[column] ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!)))
        .join("  ")
        .trimEnd(),
  );
}

/** The plan as a human-readable report: sizes in MiB/GiB with exact bytes beside them. */
export function formatMemoryPlan(plan: MemoryPlan, title: string): string {
  const c = plan.context;
  const streams = c.isKvUnified
    ? `one shared pool of ${grouped(c.contextTokens)} cells`
    : `${c.numSequences} × ${grouped(c.kvCellsPerStream)} cells`;
  const lines = [
    `${title} (${plan.architecture})`,
    `context: ${c.numSequences} sequences, KV ${streams}, batch ${c.batchSize}, ubatch ${c.ubatchSize}, ` +
      `KV type ${c.kvType}, flash attention ${c.flashAttention ? "on" : "off"}`,
    "",
    "weights by type",
  ];
  lines.push(
    ...table(
      [
        ["type", "tensors", "parameters", "size", "bytes"],
        ...plan.weightsByType.map((group) => [
          group.type,
          grouped(group.numTensors),
          grouped(group.numElements),
          formatBytes(group.bytes),
          grouped(group.bytes),
        ]),
      ],
      [false, true, true, true, true],
    ),
  );

  const active =
    plan.numActiveParameters === plan.numParameters
      ? "all active"
      : `${grouped(plan.numActiveParameters)} active per token (${grouped(plan.numExpertParameters)} in experts)`;
  lines.push("", `parameters: ${grouped(plan.numParameters)} total, ${active}`, "");

  const perToken =
    plan.swaKvBytesPerToken > 0
      ? `${grouped(plan.kvBytesPerToken)} B full attention + ${grouped(plan.swaKvBytesPerToken)} B sliding window`
      : `${grouped(plan.kvBytesPerToken)} B`;
  lines.push(
    ...table(
      [
        ["KV per token", perToken, ""],
        ["weights", formatBytes(plan.weightsBytes), grouped(plan.weightsBytes)],
        ["KV cache", formatBytes(plan.kvBytes), grouped(plan.kvBytes)],
        ["output (logits)", formatBytes(plan.outputBytes), grouped(plan.outputBytes)],
        ["compute", formatBytes(plan.computeBytes), grouped(plan.computeBytes)],
        ["total", formatBytes(plan.totalBytes), grouped(plan.totalBytes)],
      ],
      [false, true, true],
    ),
  );
  lines.push(
    "",
    `The logits buffer grows to ${formatBytes(plan.outputMaxBytes)} (total ${formatBytes(plan.totalMaxBytes)}) ` +
      "when one batch asks for logits at every position.",
  );
  for (const warning of plan.warnings) lines.push(`warning: ${warning}`);
  return `${lines.join("\n")}\n`;
}

/** The wire form of a plan (snake_case, as the server's other responses), shared by `--json` and `GET /v1/plan`. */
export function memoryPlanToJson(plan: MemoryPlan): Record<string, unknown> {
  const c = plan.context;
  return {
    architecture: plan.architecture,
    context: {
      num_sequences: c.numSequences,
      is_kv_unified: c.isKvUnified,
      num_kv_streams: c.numKvStreams,
      kv_cells_per_stream: c.kvCellsPerStream,
      swa_kv_cells_per_stream: c.swaKvCellsPerStream,
      context_tokens: c.contextTokens,
      batch_size: c.batchSize,
      ubatch_size: c.ubatchSize,
      kv_type: c.kvType,
      flash_attention: c.flashAttention,
    },
    weights_bytes: plan.weightsBytes,
    weights_by_type: plan.weightsByType.map((group) => ({
      type: group.type,
      num_tensors: group.numTensors,
      num_elements: group.numElements,
      bytes: group.bytes,
    })),
    num_parameters: plan.numParameters,
    num_active_parameters: plan.numActiveParameters,
    num_expert_parameters: plan.numExpertParameters,
    kv_bytes_per_token: plan.kvBytesPerToken,
    swa_kv_bytes_per_token: plan.swaKvBytesPerToken,
    num_kv_cells: plan.numKvCells,
    kv_bytes: plan.kvBytes,
    output_bytes: plan.outputBytes,
    output_max_bytes: plan.outputMaxBytes,
    compute_bytes: plan.computeBytes,
    total_bytes: plan.totalBytes,
    total_max_bytes: plan.totalMaxBytes,
    warnings: plan.warnings,
  };
}
