// A second host for rust_lib.wasm, in Node.js, written from docs/ABI.md alone:
// if it gives the same answers as py_host, the document is the whole contract.
//
// Usage (Node 20; no npm packages, no node:wasi):
//
//   node tests/node_host/host.mjs vectors <module.wasm> <vectors.json> [--async]
//       Runs every vector of tests/vectors.json twice, through start_procedure
//       (every reply packed) and through start_procedure_into (one buffer for
//       everything), driving the rounds with the vector's simulated network,
//       and prints one JSON array: per vector, in order, {reply, rounds}: the
//       reply document, {"ok": ProcedureOutput} or {"error": {kind, message,
//       path}}, and the rounds the executor ran. With --async the network
//       answers through an async executor. Exits 1 if the two ways disagree
//       or a buffer is left live.
//
//   node tests/node_host/host.mjs exercise <module.wasm>
//       Calls every export on purpose (exercise.mjs) and prints the report.
//
//   node tests/node_host/host.mjs faults <faults.wasm>
//       Runs the faults module's commands (faults.mjs) and prints the report.
//
// What the module prints is read from its outbox after each call and written
// to stdout at once, in the order printed; the report follows it, one line of
// JSON at the end of stdout. A refused module, a trap or a broken contract: a
// message on stderr and exit status 1; a wrong command line: status 2.

import fs from "node:fs";
import { isDeepStrictEqual } from "node:util";

import { exercise } from "./exercise.mjs";
import { asyncExecutor, networkExecutor } from "./executors.mjs";
import { faults } from "./faults.mjs";
import { Instance, loadModule } from "./instance.mjs";
import { OneBufferSteps, PackedSteps, runProcedure } from "./procedure.mjs";

const utf8 = new TextEncoder();

/** The vector's network as an executor that pushes each round it runs onto `rounds`. */
function vectorExecutor(network, answerAsync, rounds) {
  if (network === null) {
    return null; // no executor granted: a dry run
  }
  const run = networkExecutor(network);
  const executor = (round) => {
    rounds.push(round);
    return run(round);
  };
  return answerAsync ? asyncExecutor(executor) : executor;
}

/**
 * One vector both ways, on one instance: its reply document and the rounds run, once
 * both ways agree and nothing leaks.
 */
async function runVector(wasmModule, vector, answerAsync) {
  const rounds = [];
  const instance = new Instance(wasmModule, {
    executor: vectorExecutor(vector.network, answerAsync, rounds),
  });
  const input = utf8.encode(vector.input);
  const packed = {
    reply: await runProcedure(instance, input, new PackedSteps(instance)),
    rounds: rounds.splice(0),
  };
  const oneBuffer = {
    reply: await runProcedure(instance, input, new OneBufferSteps(instance, 64 * 1024)),
    rounds: rounds.splice(0),
  };
  if (!isDeepStrictEqual(packed, oneBuffer)) {
    throw new Error(
      `${vector.name}: start_procedure said ${JSON.stringify(packed)}, ` +
        `start_procedure_into ${JSON.stringify(oneBuffer)}`,
    );
  }
  const live = instance.call("live_allocations");
  if (live !== 0) {
    throw new Error(`${vector.name}: ${live} buffers live after the procedures`);
  }
  return packed;
}

async function runVectors(modulePath, vectorsPath, answerAsync) {
  const wasmModule = loadModule(fs.readFileSync(modulePath));
  const answers = [];
  for (const vector of JSON.parse(fs.readFileSync(vectorsPath, "utf8"))) {
    answers.push(await runVector(wasmModule, vector, answerAsync));
  }
  return answers;
}

function usage() {
  process.stderr.write(
    "usage: node host.mjs vectors <module.wasm> <vectors.json> [--async]\n" +
      "       node host.mjs exercise <module.wasm>\n" +
      "       node host.mjs faults <faults.wasm>\n",
  );
  process.exit(2);
}

function main([mode, ...args]) {
  if (mode === "vectors" && (args.length === 2 || (args.length === 3 && args[2] === "--async"))) {
    return runVectors(args[0], args[1], args.length === 3);
  }
  if (mode === "exercise" && args.length === 1) {
    return exercise(loadModule(fs.readFileSync(args[0])));
  }
  if (mode === "faults" && args.length === 1) {
    return faults(loadModule(fs.readFileSync(args[0])));
  }
  return usage();
}

try {
  process.stdout.write(`${JSON.stringify(await main(process.argv.slice(2)))}\n`);
} catch (error) {
  process.stderr.write(`node host: ${error.message}\n`);
  process.exitCode = 1;
}
