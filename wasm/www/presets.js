// Scenarios to start from: each fills the whole form and the network.

const many = (count) =>
  Array.from({ length: count }, (_, index) => `host${String(index + 1).padStart(4, "0")}`);

/** The tutorial's input (examples/tutorial.py); every preset changes only what it names. */
const TUTORIAL = {
  hosts: ["server1", "server2"],
  action: "reboot",
  timeout: "10",
  retries: "3",
  job_id: "1",
  states: {},
};

export const PRESETS = {
  tutorial: { ...TUTORIAL, states: { server1: "down" } },
  "all-up": { ...TUTORIAL, hosts: ["web1", "web2", "db1"] },
  flaky: { ...TUTORIAL, hosts: ["web1", "web2", "db1"], states: { web2: "flaky" } },
  // Every hundredth host down and every hundredth flaky: a partial result.
  thousand: {
    ...TUTORIAL,
    hosts: many(1000),
    action: "deploy",
    retries: "2",
    job_id: "1000",
    states: Object.fromEntries(
      many(1000).flatMap((host, index) =>
        index % 100 === 0 ? [[host, "down"]] : index % 100 === 50 ? [[host, "flaky"]] : [],
      ),
    ),
  },
};
