// Every export called on purpose, each path docs/ABI.md describes, and what
// came back: the report that tests/test_node_host.py checks against the
// document. Each section works on instances of its own and reports how many
// buffers were live at its end.

import { asyncExecutor, networkExecutor } from "./executors.mjs";
import { Instance, u32, unpack } from "./instance.mjs";
import { OneBufferSteps, PackedSteps, runProcedure, STEP_REPLY_KEYS } from "./procedure.mjs";

const utf8 = new TextEncoder();

const TUTORIAL_INPUT = utf8.encode(
  '{"timeout":10,"retries":3,"host_list":["server1","server2"],"action":"reboot","job_id":1}',
);
const SERVER1_DOWN = networkExecutor({ down: ["server1"] });
const SERVER1_DOWN_ROUND_1 = utf8.encode(
  '[{"status":"failed","reason":"host is down"},{"status":"ok"}]',
);
const STEP_CALLS = ["start_procedure", "start_procedure_into", "resume_procedure"];

/** The error kind of a reply document, "ok", "round", or "printed" for a print's 0 (null). */
function kindOf(reply) {
  if (reply === null) {
    return "printed";
  }
  return "error" in reply ? reply.error.kind : Object.keys(reply)[0];
}

/** What `use()` returns or resolves to, {reply}, or the message of what it threw, {error}. */
export async function outcome(use) {
  try {
    return { reply: await use() };
  } catch (error) {
    return { error: error.message };
  }
}

/** The document of a packed reply, copied out and freed. */
function packedReply(instance, returned) {
  const { ptr, len } = unpack(returned);
  return instance.replyDocument(instance.takeReply(ptr, len), STEP_REPLY_KEYS);
}

/** `use`'s report on a new instance granted `executor`, and the buffers live at its end. */
async function onNewInstance(wasmModule, executor, use, events = null) {
  const instance = new Instance(wasmModule, { executor, events });
  const report = await use(instance);
  return { ...report, live_allocations_after: instance.call("live_allocations") };
}

/** print_string and print_int; what they print is on stdout, in this order. */
function prints(instance) {
  const texts = ["Grüße aus Node, 中文, 🦀", "", "embedded\0NUL, not truncated", "two\nlines"];
  const numbers = [0, 42, -7, 2 ** 31 - 1, -(2 ** 31)];
  return {
    print_string: texts.map((text) => ({ text, reply: instance.printString(utf8.encode(text)) })),
    print_int: numbers.map((number) => ({ number, reply: instance.printInt(number) })),
  };
}

/**
 * "A procedure traced step by step": the tutorial's procedure with server1
 * down, one buffer of 4096 bytes, every call, write and reply recorded. The
 * executor also asks live_allocations on the first round, when the one
 * buffer is all that is live (the document's step 3).
 */
async function trace(wasmModule) {
  const events = [];
  const executor = (round) => {
    if (round.attempt === 1) {
      instance.call("live_allocations");
    }
    return SERVER1_DOWN(round);
  };
  const instance = new Instance(wasmModule, { executor, events });
  const reply = await runProcedure(instance, TUTORIAL_INPUT, new OneBufferSteps(instance, 4096));
  instance.call("live_allocations");
  return { reply, events };
}

/** Bad pointers, lengths and bytes handed to the module, bad frees, and what comes back. */
function errorPaths(instance) {
  const errors = {};
  const printString = (name, ptr, len) => {
    errors[name] = kindOf(instance.printResult(instance.call("print_string", ptr, len)));
  };
  const printInt = (name, ptr) => {
    errors[name] = kindOf(instance.printResult(instance.call("print_int", ptr)));
  };
  const four = instance.alloc(4);
  printString("print_string, a pointer not from alloc", four + 64, 4);
  printString("print_string, a range past the end of its buffer", four, 5);
  printString("print_string, a pointer past 2 GiB", 0xffff_ff00, 4);
  instance.dealloc(four, 4);
  printString("print_string, a freed buffer", four, 4);
  printInt("print_int, a freed buffer", four);
  const three = instance.alloc(3);
  printInt("print_int, a 3-byte buffer", three);
  instance.dealloc(three, 3);
  errors["print_string, not UTF-8"] = kindOf(instance.printString(Uint8Array.of(0x61, 0xff)));

  // A reply kept, not freed, to hand back as an input (the instance has no
  // executor, so the reply is a dry run's output).
  const keptPacked = instance.withInput(TUTORIAL_INPUT, (ptr, len) =>
    instance.call("start_procedure", ptr, len),
  );
  const kept = unpack(keptPacked);
  errors["start_procedure, a reply as its input"] = kindOf(
    packedReply(instance, instance.call("start_procedure", kept.ptr, kept.len)),
  );
  printString("print_string, a reply as its input", kept.ptr, kept.len);
  errors["free_mem, inside a reply"] = instance.call("free_mem", kept.ptr + 1);
  errors["dealloc, a reply with a wrong length"] = instance.call("dealloc", kept.ptr, kept.len + 1);
  errors["dealloc, a reply with its length"] = instance.call("dealloc", kept.ptr, kept.len);
  errors["free_mem, a reply freed with dealloc"] = instance.call("free_mem", kept.ptr);

  const notUtf8 = instance.withInput(Uint8Array.of(0x7b, 0xc3, 0x28), (ptr, len) =>
    packedReply(instance, instance.call("start_procedure", ptr, len)),
  );
  errors["start_procedure, not UTF-8"] = notUtf8.error;

  const buffer = instance.alloc(8);
  errors["dealloc, a wrong length"] = instance.call("dealloc", buffer, 7);
  errors["free_mem, a buffer from alloc"] = instance.call("free_mem", buffer);
  errors["dealloc, the first time"] = instance.call("dealloc", buffer, 8);
  errors["dealloc, the second time"] = instance.call("dealloc", buffer, 8);
  errors["alloc(2^31)"] = u32(instance.call("alloc", 2 ** 31));
  const empty = u32(instance.call("alloc", 0));
  errors["alloc(0) is not 0"] = empty !== 0;
  errors["dealloc(alloc(0), 0)"] = instance.call("dealloc", empty, 0);

  // The module's own memory is never the host's to free.
  errors["outbox, the same address every time"] =
    u32(instance.call("outbox")) === instance.outboxAddress;
  errors["free_mem, the outbox"] = instance.call("free_mem", instance.outboxAddress);
  errors["dealloc, the outbox"] = instance.call("dealloc", instance.outboxAddress, 16);
  const version = unpack(instance.call("crate_version"));
  errors["free_mem, the crate_version text"] = instance.call("free_mem", version.ptr);
  return errors;
}

/**
 * `name` (start_procedure_into or resume_procedure) with `bytes` in a buffer
 * of their own and the output range `out(ptr)`: its packed reply.
 */
function callWithOutput(instance, name, bytes, out) {
  return instance.withInput(bytes, (ptr, len) => {
    const [outPtr, outCap] = out(ptr);
    return packedReply(instance, instance.call(name, ptr, len, outPtr, outCap));
  });
}

// Output ranges `out(ptr)` that do not lie inside one live buffer, for an input at `ptr`.
const notFromAlloc = (ptr) => [ptr + 4096, 256];
const pastItsBuffer = (ptr) => [ptr, 4096];
const past2GiB = () => [0xffff_0000, 256];

/** The output range of start_procedure_into and resume_procedure: in place, packed, or refused. */
async function outputPaths(wasmModule) {
  const events = [];
  const tooSmall = await onNewInstance(
    wasmModule,
    SERVER1_DOWN,
    async (instance) => {
      const reply = await runProcedure(instance, TUTORIAL_INPUT, new OneBufferSteps(instance, 100));
      const steps = events.filter((event) => STEP_CALLS.includes(event.call));
      return { reply, step_replies: steps.map((event) => event.returned) };
    },
    events,
  );

  const outsideALiveBuffer = (out) =>
    onNewInstance(wasmModule, SERVER1_DOWN, (instance) => ({
      kind: kindOf(callWithOutput(instance, "start_procedure_into", TUTORIAL_INPUT, out)),
      // Nothing ran: no procedure is in progress to cancel.
      cancel_procedure_after: instance.call("cancel_procedure"),
    }));

  const resumeOutsideALiveBuffer = onNewInstance(wasmModule, SERVER1_DOWN, (instance) => {
    const steps = new OneBufferSteps(instance, 4096);
    const first = steps.start(TUTORIAL_INPUT);
    const refused = callWithOutput(
      instance,
      "resume_procedure",
      SERVER1_DOWN_ROUND_1,
      notFromAlloc,
    );
    // Nothing ran, so the procedure still waits for round 1's answer.
    const next = steps.resume(SERVER1_DOWN_ROUND_1);
    steps.close();
    return {
      first,
      refused: kindOf(refused),
      next,
      cancel_procedure_after: instance.call("cancel_procedure"),
    };
  });

  return {
    "start_procedure_into, a buffer too small for the output": tooSmall,
    "start_procedure_into, an output not from alloc": await outsideALiveBuffer(notFromAlloc),
    "start_procedure_into, an output past its buffer": await outsideALiveBuffer(pastItsBuffer),
    "start_procedure_into, an output past 2 GiB": await outsideALiveBuffer(past2GiB),
    "resume_procedure, an output not from alloc": await resumeOutsideALiveBuffer,
  };
}

/** Starting, resuming and cancelling by hand, one step at a time. */
async function stepPaths(wasmModule) {
  const byHand = (use) =>
    onNewInstance(wasmModule, SERVER1_DOWN, (instance) => {
      const steps = new OneBufferSteps(instance, 4096);
      const report = use(instance, steps);
      steps.close();
      return report;
    });
  return {
    "cancel_procedure, none in progress": await byHand((instance) => ({
      cancel_procedure: instance.call("cancel_procedure"),
    })),
    "resume_procedure, none ever started": await byHand((instance, steps) => ({
      reply: steps.resume(SERVER1_DOWN_ROUND_1),
    })),
    "cancel_procedure, one in progress": await byHand((instance, steps) => ({
      first: kindOf(steps.start(TUTORIAL_INPUT)),
      cancel_procedure: instance.call("cancel_procedure"),
      cancel_procedure_again: instance.call("cancel_procedure"),
      resume_afterwards: steps.resume(SERVER1_DOWN_ROUND_1),
    })),
    "start_procedure, one in progress": await byHand((instance, steps) => ({
      attempts: [
        steps.start(TUTORIAL_INPUT),
        steps.resume(SERVER1_DOWN_ROUND_1),
        steps.start(TUTORIAL_INPUT),
      ].map((reply) => reply.round.attempt),
      cancel_procedure: instance.call("cancel_procedure"),
    })),
    "print_string, between two steps": await byHand((instance, steps) => ({
      first: steps.start(TUTORIAL_INPUT).round.attempt,
      print_string: instance.printString(utf8.encode("between two steps")),
      next: steps.resume(SERVER1_DOWN_ROUND_1).round.attempt,
      cancel_procedure: instance.call("cancel_procedure"),
    })),
  };
}

/** The tutorial's procedure through `executor`, driven by the host; its reply or error. */
function tutorialThrough(wasmModule, executor, input = TUTORIAL_INPUT) {
  return onNewInstance(wasmModule, executor, (instance) =>
    outcome(() => runProcedure(instance, input, new PackedSteps(instance))),
  );
}

/** Executors that answer oddly, asynchronously, late, or not at all. */
async function answerPaths(wasmModule) {
  const eachHost = (hostOutcome) => (round) => round.hosts.map(() => hostOutcome);
  const throwing = (round) => {
    if (round.attempt === 2) {
      throw new Error("the executor broke");
    }
    return SERVER1_DOWN(round);
  };
  const neverAnswers = () => new Promise(() => {});
  return {
    "null on the first round": await tutorialThrough(wasmModule, () => null),
    "null on a later round": await tutorialThrough(wasmModule, (round) =>
      round.attempt === 1 ? SERVER1_DOWN(round) : null,
    ),
    "the wrong number of outcomes": await tutorialThrough(wasmModule, () => [{ status: "ok" }]),
    "an unknown status": await tutorialThrough(wasmModule, eachHost({ status: "maybe" })),
    "an outcome with another field": await tutorialThrough(
      wasmModule,
      eachHost({ status: "ok", host: "server1" }),
    ),
    "an async executor": await tutorialThrough(wasmModule, asyncExecutor(SERVER1_DOWN)),
    "an async executor that never answers": await tutorialThrough(
      wasmModule,
      neverAnswers,
      utf8.encode('{"timeout":1,"retries":0,"host_list":["server1"],"action":"reboot","job_id":2}'),
    ),
    "an executor that throws on round 2": await onNewInstance(
      wasmModule,
      throwing,
      async (instance) => ({
        ...(await outcome(() => runProcedure(instance, TUTORIAL_INPUT, new PackedSteps(instance)))),
        cancel_procedure_afterwards: instance.call("cancel_procedure"),
      }),
    ),
    "two procedures at once on one instance": await onNewInstance(
      wasmModule,
      asyncExecutor(SERVER1_DOWN),
      async (instance) => {
        const first = outcome(() =>
          runProcedure(instance, TUTORIAL_INPUT, new PackedSteps(instance)),
        );
        const second = outcome(() =>
          runProcedure(instance, TUTORIAL_INPUT, new PackedSteps(instance)),
        );
        return { first: await first, second: await second };
      },
    ),
  };
}

/** Every export called on purpose; the report that tests/test_node_host.py checks. */
export async function exercise(wasmModule) {
  const instance = new Instance(wasmModule, { executor: null });
  return {
    abi_version: instance.call("abi_version"),
    crate_version: instance.crateVersion(),
    ...prints(instance),
    errors: errorPaths(instance),
    live_allocations: instance.call("live_allocations"),
    trace: await trace(wasmModule),
    outputs: await outputPaths(wasmModule),
    steps: await stepPaths(wasmModule),
    answers: await answerPaths(wasmModule),
  };
}
