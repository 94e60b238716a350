// A network that exists only in memory, with the semantics of py_host's
// SimulatedNetwork, so the page and the Python host give the same answers:
// a host in `down` fails every attempt; a host in `flaky` fails its first N
// attempts, then succeeds; a host in `slow` takes that many seconds and
// times out when that is longer than the round's timeout. Every other host
// succeeds. Host names ignore case.

/**
 * @param {{down?: string[], flaky?: Record<string, number>, slow?: Record<string, number>}} spec
 * @returns {(request: string) => string} an executor for start_procedure:
 *   a round request (JSON) in, the outcomes (JSON) out.
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

  return (request) => {
    const round = JSON.parse(request);
    return JSON.stringify(round.hosts.map((host) => attempt(host.toLowerCase(), round)));
  };
}
