import assert from "node:assert/strict";
import { test } from "node:test";
import { toChatHistory } from "../../../src/engine/chat-template.ts";

const CALL = { id: "call_1", name: "get_weather", arguments: '{"city": "Paris"}' };

test("a conversation without tools becomes the wrapper's history, ending in an empty model response", () => {
  assert.deepEqual(
    toChatHistory([
      { role: "system", content: "Be brief." },
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello" },
      { role: "user", content: "Bye" },
    ]),
    [
      { type: "system", text: "Be brief." },
      { type: "user", text: "Hi" },
      { type: "model", response: ["Hello"] },
      { type: "user", text: "Bye" },
      { type: "model", response: [] },
    ],
  );
});

test("calls carry their results, and the model answers the results in the same response", () => {
  const history = toChatHistory([
    { role: "user", content: "Weather?" },
    { role: "assistant", content: "Looking.", toolCalls: [CALL, { ...CALL, id: "call_2", arguments: "{}" }] },
    { role: "tool", content: "sunny", toolCallId: "call_1" },
    { role: "tool", content: "rain", toolCallId: "call_2" },
  ]);
  assert.deepEqual(history, [
    { type: "user", text: "Weather?" },
    {
      type: "model",
      response: [
        "Looking.",
        { type: "functionCall", name: "get_weather", params: { city: "Paris" }, result: "sunny", startsNewChunk: true },
        { type: "functionCall", name: "get_weather", params: {}, result: "rain", startsNewChunk: false },
      ],
    },
  ]);
});

test("an assistant turn after results continues that response; arguments that are not JSON stay text", () => {
  const history = toChatHistory([
    { role: "user", content: "Weather?" },
    { role: "assistant", content: "", toolCalls: [{ ...CALL, arguments: "not json" }] },
    { role: "tool", content: "sunny", toolCallId: "call_1" },
    { role: "assistant", content: "It is sunny." },
    { role: "user", content: "Thanks" },
  ]);
  assert.deepEqual(history, [
    { type: "user", text: "Weather?" },
    {
      type: "model",
      response: [
        { type: "functionCall", name: "get_weather", params: "not json", result: "sunny", startsNewChunk: true },
        "It is sunny.",
      ],
    },
    { type: "user", text: "Thanks" },
    { type: "model", response: [] },
  ]);
});
