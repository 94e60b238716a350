// Drives a procedure through the module's steps, as docs/ABI.md's host
// does: each step answers with the output, an error or a round; the
// executor runs the round, synchronously or through a Promise, while no
// WebAssembly runs, and its answer is the next step. Every rule about the
// procedure (what a round asks, what an answer means) lives in Rust: this
// only carries documents, and turns an executor that cannot say anything
// into an answer that says why.

/**
 * A runner over the module's `start_procedure` and `resume_procedure`. The
 * module holds one procedure at a time, so a run started while another
 * waits for its executor abandons it, as `start_procedure` does: the
 * abandoned run ends with `null` and never resumes the newer procedure.
 *
 * @returns {(input: string, executor?: (round: string) => string | Promise<string>)
 *   => Promise<object | null>} runs ProcedureInput JSON on the executor (a
 *   round, JSON, in; the outcomes, JSON, out), or as a dry run without one;
 *   resolves to the reply, `{ok}` or `{error}`, or `null` if abandoned.
 */
export function procedureRunner({ start_procedure, resume_procedure }) {
  let latest = null;
  return async (input, executor) => {
    const run = Symbol("run");
    latest = run;
    let reply = JSON.parse(start_procedure(input, executor !== undefined));
    while (reply.round !== undefined) {
      const answer = await answerRound(executor, reply.round);
      if (latest !== run) return null;
      reply = JSON.parse(resume_procedure(answer));
    }
    return reply;
  };
}

/**
 * The executor's answer to `round` (JSON text). If it throws, its Promise
 * rejects, it answers no string, or it has not answered within the round's
 * timeout (which the host enforces, docs/ABI.md), every host of the round
 * gets an outcome saying so: the procedure goes on, and retries them.
 */
async function answerRound(executor, round) {
  let answer;
  try {
    answer = await withinTimeout(executor(JSON.stringify(round)), round.timeout);
  } catch (thrown) {
    if (thrown instanceof TimedOut) return everyHost(round, "timeout", thrown.message);
    return everyHost(round, "failed", `the executor threw ${describe(thrown)}`);
  }
  if (typeof answer !== "string") {
    return everyHost(round, "failed", "the executor's answer was unusable: it is not a string");
  }
  return answer;
}

class TimedOut extends Error {}

/** `answer`, or a TimedOut rejection once `seconds` have passed without it. */
function withinTimeout(answer, seconds) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(
      () => reject(new TimedOut(`the executor did not answer within ${seconds} s`)),
      seconds * 1000,
    );
  });
  return Promise.race([answer, late]).finally(() => clearTimeout(timer));
}

/** An answer giving every host of `round` the same outcome. */
function everyHost(round, status, reason) {
  return JSON.stringify(round.hosts.map(() => ({ status, reason })));
}

/** What a thrown value says: its `message`, else its text. */
function describe(thrown) {
  try {
    if (typeof thrown?.message === "string") return thrown.message;
  } catch {
    // A `message` getter that throws says nothing: fall through.
  }
  return typeof thrown === "string" ? thrown : `a ${typeof thrown} without a message`;
}
