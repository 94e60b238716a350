// Driving a procedure ("Procedures, step by step"): the module hands back each
// round as a reply; this host checks the round against the input, runs it with
// its executor, and resumes the procedure with the answer, until the ok or
// error reply. The module never calls this host: all of this runs between calls.

import { unpack } from "./instance.mjs";

export const STEP_REPLY_KEYS = ["ok", "error", "round"];

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const utf8 = new TextEncoder();

/** The input as the module reads it; null when it is no JSON object (then no round may come). */
function inputObject(bytes) {
  try {
    const input = JSON.parse(strictUtf8.decode(bytes));
    return input !== null && typeof input === "object" && !Array.isArray(input) ? input : null;
  } catch {
    return null;
  }
}

/** What the rounds of one procedure may ask for, given its input ("What a host checks"). */
class RoundPolicy {
  constructor(inputBytes) {
    this.input = inputObject(inputBytes);
    this.lastAttempt = 0;
    this.attemptsByHost = new Map();
  }

  /** Why `round` asks for more than the input allows, or null when it is allowed. */
  refusal(round) {
    const input = this.input;
    if (input === null) {
      return "came for an input that is not a JSON object";
    }
    if (round === null || typeof round !== "object") {
      return "is not an object";
    }
    if (round.action !== input.action || round.timeout !== input.timeout) {
      return "has another action or timeout than the input";
    }
    if (round.attempt !== this.lastAttempt + 1) {
      return `is not attempt ${this.lastAttempt + 1}`;
    }
    const hosts = round.hosts;
    if (!Array.isArray(hosts) || hosts.length === 0 || hosts.some((h) => typeof h !== "string")) {
      return "has no list of host names";
    }
    if (new Set(hosts).size !== hosts.length) {
      return "asks for a host twice";
    }
    for (const host of hosts) {
      if (!Array.isArray(input.host_list) || !input.host_list.includes(host)) {
        return `asks for ${host}, which is not in host_list`;
      }
      if ((this.attemptsByHost.get(host) ?? 0) >= 1 + input.retries) {
        return `asks for ${host}, which has no attempts left`;
      }
    }
    return null;
  }

  /** Count an allowed round's attempts. */
  admit(round) {
    this.lastAttempt = round.attempt;
    for (const host of round.hosts) {
      this.attemptsByHost.set(host, (this.attemptsByHost.get(host) ?? 0) + 1);
    }
  }
}

/** A step's reply: in `out` (the host's buffer) when the pointer half is 0, else packed. */
function readStepReply(instance, name, returned, out) {
  const { ptr, len } = unpack(returned);
  if (ptr !== 0) {
    return instance.replyDocument(instance.takeReply(ptr, len), STEP_REPLY_KEYS);
  }
  if (out === null) {
    throw instance.broken(`${name} returned ${returned}, not a packed reply`);
  }
  if (len > out.cap) {
    throw instance.broken(`${name} returned a length of ${len}, more than its out_cap ${out.cap}`);
  }
  return instance.replyDocument(instance.read(out.ptr, len), STEP_REPLY_KEYS);
}

/**
 * Steps through start_procedure, then resume_procedure with an out_cap of 0:
 * every reply comes packed in a buffer of its own, and each input or answer
 * in a buffer of its own too.
 */
export class PackedSteps {
  constructor(instance) {
    this.instance = instance;
  }

  start(input) {
    return this.instance.withInput(input, (ptr, len) =>
      readStepReply(
        this.instance,
        "start_procedure",
        this.instance.call("start_procedure", ptr, len),
        null,
      ),
    );
  }

  resume(answer) {
    return this.instance.withInput(answer, (ptr, len) =>
      readStepReply(
        this.instance,
        "resume_procedure",
        this.instance.call("resume_procedure", ptr, len, ptr, 0),
        { ptr, cap: 0 },
      ),
    );
  }

  close() {}
}

/**
 * Steps through start_procedure_into and resume_procedure with one buffer for
 * the input, every answer and every reply that fits, as in "A procedure traced
 * step by step"; it is replaced by a larger one when an input or answer does
 * not fit, and freed at the end.
 */
export class OneBufferSteps {
  constructor(instance, capacity) {
    this.instance = instance;
    this.capacity = capacity;
    this.buffer = null;
  }

  start(input) {
    return this.step("start_procedure_into", input);
  }

  resume(answer) {
    return this.step("resume_procedure", answer);
  }

  step(name, bytes) {
    this.fit(bytes.length);
    this.instance.write(this.buffer, bytes);
    const returned = this.instance.call(
      name,
      this.buffer,
      bytes.length,
      this.buffer,
      this.capacity,
    );
    return readStepReply(this.instance, name, returned, { ptr: this.buffer, cap: this.capacity });
  }

  fit(length) {
    if (this.buffer !== null && length <= this.capacity) {
      return;
    }
    this.close();
    this.capacity = Math.max(this.capacity, length);
    this.buffer = this.instance.alloc(this.capacity);
  }

  close() {
    if (this.buffer !== null && !this.instance.discarded) {
      this.instance.dealloc(this.buffer, this.capacity);
    }
    this.buffer = null;
  }
}

/** A timeout for every host of `round`: what an executor that has not answered in time gets. */
function timedOut(round) {
  return round.hosts.map(() => ({
    status: "timeout",
    reason: `no answer within ${round.timeout} s`,
  }));
}

/**
 * The executor's answer to `round`, sync or async. Bounding each attempt by
 * the round's timeout is the host's job: an async executor still running
 * after it gets every host timed out (its late answer is ignored). A sync
 * executor cannot be interrupted.
 */
async function answerInTime(executor, round) {
  let timer;
  const deadline = new Promise((resolve) => {
    timer = setTimeout(() => resolve(timedOut(round)), round.timeout * 1000);
  });
  try {
    return await Promise.race([executor(round), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The answer to `round`; if the executor fails, the procedure is cancelled and that thrown. */
async function answerOrCancel(instance, round) {
  try {
    return await answerInTime(instance.executor, round);
  } catch (error) {
    // This host stops driving the procedure: abandon it, so the instance stays usable.
    const status = instance.call("cancel_procedure");
    if (status !== 0) {
      throw instance.broken(`cancel_procedure with a procedure in progress returned ${status}`);
    }
    throw new Error(
      `the executor failed on round ${round.attempt}, so the procedure was cancelled: ` +
        error.message,
    );
  }
}

/** Check a round before anything of it runs: one the input does not allow is a broken module. */
function admitRound(instance, policy, round) {
  if (instance.executor === null) {
    throw instance.broken(`a round from a module granted no executor: ${JSON.stringify(round)}`);
  }
  const why = policy.refusal(round);
  if (why !== null) {
    throw instance.broken(`round ${JSON.stringify(round)} ${why}; none of it was run`);
  }
  policy.admit(round);
}

async function driveRounds(instance, input, steps) {
  const policy = new RoundPolicy(input);
  let reply = steps.start(input);
  while ("round" in reply) {
    admitRound(instance, policy, reply.round);
    const answer = await answerOrCancel(instance, reply.round);
    reply = steps.resume(utf8.encode(JSON.stringify(answer)));
  }
  return reply;
}

/**
 * Run the procedure for `input` (bytes) to its reply document, {"ok": ...} or
 * {"error": ...}, making its calls through `steps` (PackedSteps or OneBufferSteps).
 */
export async function runProcedure(instance, input, steps) {
  // One procedure per instance: starting another would abandon this one ("Procedures").
  if (instance.procedureDriven) {
    throw new Error("a procedure is already being driven on this instance");
  }
  instance.procedureDriven = true;
  try {
    return await driveRounds(instance, input, steps);
  } finally {
    instance.procedureDriven = false;
    steps.close();
  }
}
