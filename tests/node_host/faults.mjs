// The test-only faults module (`just build-faults`; its commands are listed in
// src/faults.rs) misbehaving on command, and what this host made of each:
// the report that tests/test_node_host.py checks. Every command runs on a new
// instance, since a trap or a broken contract discards the one it happened on.

import { networkExecutor } from "./executors.mjs";
import { outcome } from "./exercise.mjs";
import { Instance } from "./instance.mjs";
import { OneBufferSteps, runProcedure } from "./procedure.mjs";

const utf8 = new TextEncoder();

// print_string given these commands.
const PRINT_COMMANDS = [
  "fault:panic",
  "fault:exit",
  "fault:stack-overflow",
  "fault:reply-out-of-bounds",
  "fault:reply-not-live",
  "fault:reply-garbage",
  "fault:reply-ok-not-output",
  "fault:huge-output",
  "fault:huge-output-then-error",
];

// start_procedure_into given these commands as its whole input.
const PROCEDURE_COMMANDS = ["fault:panic", "fault:reply-in-place-too-long"];

// start_procedure_into given an input whose action names a fault that asks for a bad round.
const ROUND_ACTIONS = [
  "fault-round-garbage",
  "fault-round-bad-host",
  "fault-round-other-host",
  "fault-round-other-action",
  "fault-round-forever",
];

function printCommand(wasmModule, command) {
  const instance = new Instance(wasmModule, { executor: null });
  return outcome(() => instance.printString(utf8.encode(command)));
}

/** A procedure run with an executor on which every host is up, and the rounds it ran. */
async function procedure(wasmModule, input, grantExecutor = true) {
  const ran = [];
  const everyHostUp = networkExecutor({});
  const executor = (round) => {
    ran.push(round);
    return everyHostUp(round);
  };
  const instance = new Instance(wasmModule, { executor: grantExecutor ? executor : null });
  const steps = new OneBufferSteps(instance, 4096);
  return { ...(await outcome(() => runProcedure(instance, utf8.encode(input), steps))), ran };
}

/** An input for a round fault: timeout 1 and host "a", as src/faults.rs's rounds expect. */
function roundFaultInput(action) {
  return JSON.stringify({ timeout: 1, retries: 0, host_list: ["a"], action, job_id: 1 });
}

/** After a trap: the instance is refused, and a new one works. */
async function afterATrap(wasmModule) {
  const trapped = new Instance(wasmModule, { executor: null });
  const trap = await outcome(() => trapped.printString(utf8.encode("fault:panic")));
  const again = await outcome(() => trapped.call("live_allocations"));
  const fresh = new Instance(wasmModule, { executor: null });
  return { trap, again, new_instance_live_allocations: fresh.call("live_allocations") };
}

/** Every fault above on a new instance; the report that tests/test_node_host.py checks. */
export async function faults(wasmModule) {
  const report = { print_string: {}, start_procedure_into: {} };
  for (const command of PRINT_COMMANDS) {
    report.print_string[command] = await printCommand(wasmModule, command);
  }
  for (const command of PROCEDURE_COMMANDS) {
    report.start_procedure_into[command] = await procedure(wasmModule, command);
  }
  for (const action of ROUND_ACTIONS) {
    report.start_procedure_into[action] = await procedure(wasmModule, roundFaultInput(action));
  }
  report.start_procedure_into["fault-round-other-host, no executor granted"] = await procedure(
    wasmModule,
    roundFaultInput("fault-round-other-host"),
    false,
  );
  report.after_a_trap = await afterATrap(wasmModule);
  return report;
}
