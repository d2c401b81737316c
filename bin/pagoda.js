#!/usr/bin/env node
// Runs the TypeScript sources through tsx, as `npm start` does, so `npx pagoda …` needs no build step.
import { register } from "tsx/esm/api";

register();
await import("../src/cli.ts");
