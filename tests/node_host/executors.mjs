// The executors this host grants: something that runs a round's action on
// each of its hosts and returns (or resolves to) the answer, one outcome per
// host in the round's order ("Procedures, step by step").

import { simulatedNetwork } from "../../wasm/www/network.js";

/** The simulated network (wasm/www/network.js, py_host's semantics) as a sync executor. */
export function networkExecutor(spec) {
  const network = simulatedNetwork(spec);
  return (round) => JSON.parse(network(JSON.stringify(round)));
}

/** The same executor, answering asynchronously: after the current call stack has unwound. */
export function asyncExecutor(executor) {
  return async (round) => {
    await new Promise((resolve) => setImmediate(resolve));
    return executor(round);
  };
}
