// The simulated network's table: a row for each host typed, with its state.
// Rows are keyed by host name and kept across edits, so a keystroke in a
// list of thousands of hosts touches the rows of the lines it changed, not
// the whole table.

const STATES = ["up", "down", "flaky"];

/** @param {HTMLTableSectionElement} body the table's tbody, which it fills. */
export function networkTable(body) {
  const rows = new Map();

  const newRow = (host) => {
    const select = document.createElement("select");
    select.dataset.host = host;
    select.setAttribute("aria-label", `State of ${host}`);
    select.append(...STATES.map((state) => new Option(state, state)));
    const name = document.createElement("td");
    name.textContent = host;
    const state = document.createElement("td");
    state.append(select);
    const row = document.createElement("tr");
    row.append(name, state);
    return row;
  };

  const selects = () => body.querySelectorAll("select");

  return {
    /** One row per distinct host, in order; a host's row, and so its state, is kept while it is listed. */
    show(hosts) {
      const listed = [...new Set(hosts)];
      const kept = new Set(listed);
      for (const [host, row] of rows) {
        if (!kept.has(host)) {
          row.remove();
          rows.delete(host);
        }
      }
      listed.forEach((host, index) => {
        if (!rows.has(host)) rows.set(host, newRow(host));
        const row = rows.get(host);
        if (body.children[index] !== row) body.insertBefore(row, body.children[index] ?? null);
      });
    },

    setEvery(state) {
      for (const select of selects()) select.value = state;
    },

    /** @param {Record<string, string>} states a state for some hosts: they take it, the others are up. */
    setStates(states) {
      for (const select of selects()) select.value = states[select.dataset.host] ?? "up";
    },

    /** The states chosen, as simulatedNetwork's spec. */
    spec() {
      const down = [];
      const flaky = {};
      for (const select of selects()) {
        if (select.value === "down") down.push(select.dataset.host);
        if (select.value === "flaky") flaky[select.dataset.host] = 1;
      }
      return { down, flaky };
    },
  };
}
