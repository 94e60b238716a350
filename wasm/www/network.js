// A network that exists only in memory, with the semantics of py_host's
// SimulatedNetwork, so the page and the Python host give the same answers:
// a host in `down` fails every attempt; a host in `flaky` fails its first N
// attempts, then succeeds; a host in `slow` takes that many seconds and
// times out when that is longer than the round's timeout. Every other host
// succeeds. Host names ignore case.

/**
 * @param {{down?: string[], flaky?: Record<string, number>, slow?: Record<string, number>}} spec
 * @returns {(round: string) => string} an executor for procedure.js's runner:
 *   a round (JSON) in, the outcomes (JSON) out, at once.
 */
export function simulatedNetwork({ down = [], flaky = {}, slow = {} } = {}) {
  const lowerKeys = (record) =>
    new Map(Object.entries(record).map(([host, value]) => [host.toLowerCase(), value]));
  const downHosts = new Set(down.map((host) => host.toLowerCase()));
  const flakyHosts = lowerKeys(flaky);
  const slowHosts = lowerKeys(slow);

  const attempt = (host, round) => {
    if (downHosts.has(host)) {
      return { status: "failed", reason: "host is down" };
    }
    if (round.attempt <= (flakyHosts.get(host) ?? 0)) {
      return { status: "failed", reason: `host is flaky: attempt ${round.attempt} dropped` };
    }
    if ((slowHosts.get(host) ?? 0) > round.timeout) {
      return { status: "timeout", reason: `timed out after ${round.timeout} s` };
    }
    return { status: "ok" };
  };

  return (roundJson) => {
    const round = JSON.parse(roundJson);
    return JSON.stringify(round.hosts.map((host) => attempt(host.toLowerCase(), round)));
  };
}
