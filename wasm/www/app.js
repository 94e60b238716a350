// The page: a form for ProcedureInput, a simulated network, and the reply
// rendered. Every rule about the input lives in Rust: the page sends what
// the user typed and shows the module's errors next to the field they name.

import init, * as rust from "./pkg/rust_lib_web.js";
import { networkTable } from "./network-table.js";
import { simulatedNetwork } from "./network.js";
import { PRESETS } from "./presets.js";
import { procedureRunner } from "./procedure.js";

const FIELDS = ["host_list", "action", "timeout", "retries", "job_id"];
const $ = (id) => document.getElementById(id);
// Time spent in the module's own calls, for the reply: the rounds the
// simulated network runs between them are not the module's.
let moduleMs = 0;
const timed =
  (call) =>
  (...args) => {
    const start = performance.now();
    try {
      return call(...args);
    } finally {
      moduleMs += performance.now() - start;
    }
  };
const runProcedure = procedureRunner({
  start_procedure: timed(rust.start_procedure),
  resume_procedure: timed(rust.resume_procedure),
});
const table = networkTable($("network").querySelector("tbody"));

/** The hosts as typed: one a line, blank lines skipped. */
function hostsTyped() {
  return $("host_list").value.split("\n").map((line) => line.trim()).filter((line) => line !== "");
}

/**
 * A number field as JSON. The page's one rule for whole numbers, as
 * print_int_typed's in Rust: an optional leading minus and digits, nothing
 * else. Such a number goes as a JSON integer, exact however long (a JS
 * number would round it past 2^53); anything else as the string typed, for
 * the module to refuse, quoting it.
 */
function integerOrText(text) {
  return /^-?[0-9]+$/.test(text) ? BigInt(text).toString() : JSON.stringify(text);
}

/** ProcedureInput as JSON text, built from what the user typed. */
function procedureJson() {
  const fields = [
    ["host_list", JSON.stringify(hostsTyped())],
    ["action", JSON.stringify($("action").value)],
    ["timeout", integerOrText($("timeout").value)],
    ["retries", integerOrText($("retries").value)],
    ["job_id", integerOrText($("job_id").value)],
  ];
  return `{${fields.map(([name, json]) => `"${name}":${json}`).join(",")}}`;
}

function clearErrors() {
  for (const field of FIELDS) {
    $(`${field}-error`).textContent = "";
    $(field).removeAttribute("aria-invalid");
  }
  $("form-error").textContent = "";
}

/**
 * Shows the module's error next to the field its path names, and returns
 * where focus goes: that field, or the form's own error when it names none.
 */
function showError({ message, path }) {
  const [field, index] = path;
  if (!FIELDS.includes(field)) {
    $("form-error").textContent = message;
    return { target: $("form-error"), said: message };
  }
  const which = field === "host_list" && index !== undefined ? `host ${index + 1}: ` : "";
  $(`${field}-error`).textContent = which + message;
  $(field).setAttribute("aria-invalid", "true");
  const label = document.querySelector(`label[for="${field}"]`).textContent;
  return { target: $(field), said: `${label}: ${which}${message}` };
}

function renderOutput(output) {
  $("result-result").textContent = output.result;
  $("result-result").className = output.result;
  $("result-message").textContent = output.message;
  $("result-dry-run").textContent = output.dry_run ? "yes: no executor granted, nothing ran" : "no";
  $("result-time").textContent = `${moduleMs.toFixed(1)} ms`;
  const rows = output.failures.map(({ host, attempts, reason }) => {
    const row = document.createElement("tr");
    for (const value of [host, attempts, reason]) {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      row.append(cell);
    }
    return row;
  });
  $("failures").querySelector("tbody").replaceChildren(...rows);
  $("failures").hidden = rows.length === 0;
}

/** Says `text` to screen readers, even when it is what they were told last. */
function announce(text) {
  $("announce").textContent = "";
  requestAnimationFrame(() => {
    $("announce").textContent = text;
  });
}

async function run(event) {
  event.preventDefault();
  clearErrors();
  const executor = $("use-network").checked ? simulatedNetwork(table.spec()) : undefined;
  moduleMs = 0;
  const reply = await runProcedure(procedureJson(), executor);
  // Abandoned for a later run, which shows its own reply.
  if (reply === null) return;
  $("raw").textContent = JSON.stringify(reply);
  $("copy-status").textContent = "";
  $("result").hidden = false;
  $("result").querySelector("dl").hidden = reply.error !== undefined;
  if (reply.error) {
    $("failures").hidden = true;
    const { target, said } = showError(reply.error);
    // Focus brings the field into view, wherever the page is scrolled.
    target.focus();
    announce(`Not run: ${said}`);
  } else {
    renderOutput(reply.ok);
    $("result-heading").focus();
    announce(`Reply: ${reply.ok.result}, ${reply.ok.message}`);
  }
}

/** Shows what a print call printed, or its error beside the input it came from. */
function printed(reply, input) {
  const error = $(`${input.id}-error`);
  error.textContent = reply.error ? reply.error.message : "";
  if (reply.error) {
    input.setAttribute("aria-invalid", "true");
    announce(`Not printed: ${reply.error.message}`);
  } else {
    input.removeAttribute("aria-invalid");
    $("output").textContent += `${reply.ok}\n`;
  }
}

/** Fills the form and the network with a scenario of presets.js. */
function usePreset({ hosts, action, timeout, retries, job_id, states }) {
  const values = { host_list: hosts.join("\n"), action, timeout, retries, job_id };
  for (const field of FIELDS) $(field).value = values[field];
  table.show(hosts);
  table.setStates(states);
  clearErrors();
  $("result").hidden = true;
}

function reset() {
  // The host states' selects are in the form: this sets them back to "up" too.
  $("procedure").reset();
  table.show(hostsTyped());
  clearErrors();
  $("result").hidden = true;
  announce("The form is reset");
}

async function copyRaw() {
  try {
    await navigator.clipboard.writeText($("raw").textContent);
    $("copy-status").textContent = "Copied";
  } catch (error) {
    $("copy-status").textContent = `Not copied: ${error.message}`;
  }
}

/** For tests: one input vector (tests/vectors.json) run as the Python host runs it. */
function runVector({ input, network: spec }) {
  return runProcedure(input, spec ? simulatedNetwork(spec) : undefined);
}

async function main() {
  await init();
  const showHosts = () => table.show(hostsTyped());
  showHosts();
  $("host_list").addEventListener("input", showHosts);
  for (const button of document.querySelectorAll("[data-every]")) {
    button.addEventListener("click", () => table.setEvery(button.dataset.every));
  }
  for (const button of document.querySelectorAll("[data-preset]")) {
    button.addEventListener("click", () => usePreset(PRESETS[button.dataset.preset]));
  }
  $("reset").addEventListener("click", reset);
  $("copy").addEventListener("click", copyRaw);
  $("procedure").addEventListener("submit", run);
  $("print-string").addEventListener("submit", (event) => {
    event.preventDefault();
    printed(JSON.parse(rust.print_string($("text").value)), $("text"));
  });
  $("print-int").addEventListener("submit", (event) => {
    event.preventDefault();
    printed(JSON.parse(rust.print_int_typed($("number").value)), $("number"));
  });
  $("run").disabled = false;
  $("status").textContent = "Ready: the module runs in this page.";
  $("version").textContent = `Module rust_lib ${rust.version()}`;
  // For tests: the vectors, the page's procedure runner, and the module's functions themselves.
  window.demo = { runVector, runProcedure, rust };
}

main().catch((error) => {
  $("status").textContent = `The module failed to load: ${error}`;
  $("status").className = "error";
});
