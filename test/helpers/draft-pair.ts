/**
 * Two listening servers on stories260K for speculation tests: one plain, one speculating with a draft model cut from
 * stories260K's first 4 of its 5 blocks (their greedy tokens agree about 58% of the time, so drafts are both
 * accepted and rejected), 3 drafts per step at a fixed length.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deriveDraftModel } from "../../src/gguf/derive-draft.ts";
import { type ModelServer, STORIES_MODEL, startModelServer } from "./model-server.ts";

export interface DraftPair {
  readonly plain: ModelServer;
  readonly speculative: ModelServer;
  close(): Promise<void>;
}

/** Both servers with 16 sequences of 256 tokens; `close` stops them and deletes the draft model. */
export async function startDraftPair(): Promise<DraftPair> {
  const dir = await mkdtemp(join(tmpdir(), "pagoda-draft-pair-"));
  const draftPath = join(dir, "stories-4-of-5.gguf");
  await deriveDraftModel(STORIES_MODEL, draftPath, { keepLayers: 4 });
  const flags = ["--parallel", "16", "--ctx-size", "256"];
  const plain = await startModelServer(flags);
  const speculative = await startModelServer([
    ...flags,
    "--spec-mode",
    "draft",
    "--draft-model",
    draftPath,
    "--draft-max",
    "3",
    "--spec-adaptive",
    "false",
  ]);
  return {
    plain,
    speculative,
    close: async () => {
      await plain.close();
      await speculative.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
