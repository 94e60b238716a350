// A second host for rust_lib.wasm, in Node.js, written from docs/ABI.md alone:
// if it gives the same answers as py_host, the document is the whole contract.
//
// Usage (Node 20; no npm packages):
//
//   node tests/node_host/host.mjs vectors <module.wasm> <vectors.json>
//       Runs every vector of tests/vectors.json through start_procedure and
//       through start_procedure_into (one buffer for the input and the reply)
//       and prints one JSON array: per vector, in order, the parsed reply
//       document, {"ok": ProcedureOutput} or {"error": {kind, message, path}}.
//       Exits 1 if the two calls disagree, a buffer leaks or the module traps.
//
//   node tests/node_host/host.mjs exercise <module.wasm>
//       Calls every export on purpose: print_string, print_int, the tutorial's
//       procedure with server1 down (freed twice with free_mem), the error
//       paths, live_allocations at the end. Prints one JSON object, the report
//       (its keys are built in exercise() below).
//
// Stdout carries only this host's JSON. The module's standard output (WASI
// fd 1) goes to a temporary file that the host reads back after each call,
// so what each print call printed, byte for byte, is reported with the call
// ("printed") instead of being mixed into the JSON. The module's fd 2 goes to
// this process's stderr. A refused module, a trap or a broken contract: a
// message on stderr and exit status 1; a wrong command line: status 2.
// Node prints an ExperimentalWarning for node:wasi on stderr; silence it with
// NODE_NO_WARNINGS=1.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { WASI } from "node:wasi";

import { simulatedNetwork } from "../../wasm/www/network.js";

const ABI_VERSION = 2;

// The seven imports of docs/ABI.md ("Imports"); a module asking for anything
// else is refused, since this host grants nothing more.
const PROVIDED_IMPORTS = {
  host: ["execute_round", "report_panic"],
  wasi_snapshot_preview1: [
    "fd_write",
    "random_get",
    "environ_sizes_get",
    "environ_get",
    "proc_exit",
  ],
};

// The exported functions of ABI version 2 and how many parameters each takes.
const EXPORTED_FUNCTIONS = {
  abi_version: 0,
  crate_version: 0,
  alloc: 1,
  dealloc: 2,
  free_mem: 1,
  live_allocations: 0,
  print_string: 2,
  print_int: 1,
  start_procedure: 2,
  start_procedure_into: 4,
};

/** The module, or this host's use of it, broke the contract: not a reply to report. */
class ContractError extends Error {}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const utf8 = new TextEncoder();

// JavaScript sees the module's i32 and i64 as signed; the ABI means unsigned
// ("Packed buffers"), or memory past 2 GiB would be misread.
const u32 = (value) => value >>> 0;

function unpack(packed) {
  const p = BigInt.asUintN(64, packed);
  return { ptr: Number(p >> 32n), len: Number(p & 0xffff_ffffn) };
}

function pack(ptr, len) {
  return (BigInt(ptr) << 32n) | BigInt(len);
}

/** A reply document's text, checked to be one object with exactly one key, ok or error. */
function parseReply(text) {
  const reply = JSON.parse(text);
  const keys = reply !== null && typeof reply === "object" ? Object.keys(reply) : [];
  if (keys.length !== 1 || !["ok", "error"].includes(keys[0])) {
    throw new ContractError(`not a reply document: ${text}`);
  }
  return reply;
}

/** Refuse a module that imports what this host does not provide, before running any of it. */
function checkImports(wasmModule) {
  for (const { module, name, kind } of WebAssembly.Module.imports(wasmModule)) {
    if (kind !== "function" || !PROVIDED_IMPORTS[module]?.includes(name)) {
      throw new ContractError(`refusing the module: it imports ${module}.${name} (${kind})`);
    }
  }
}

/** Refuse a module whose ABI version this host does not speak, then one missing an export. */
function checkExports(exports) {
  if (typeof exports.abi_version !== "function") {
    throw new ContractError("refusing the module: it exports no abi_version");
  }
  const version = exports.abi_version();
  if (version !== ABI_VERSION) {
    throw new ContractError(
      `refusing the module: its abi_version is ${version}, this host speaks only ${ABI_VERSION}`,
    );
  }
  if (!(exports.memory instanceof WebAssembly.Memory)) {
    throw new ContractError("refusing the module: it exports no memory");
  }
  for (const [name, arity] of Object.entries(EXPORTED_FUNCTIONS)) {
    if (typeof exports[name] !== "function" || exports[name].length !== arity) {
      throw new ContractError(`refusing the module: no export ${name} taking ${arity} arguments`);
    }
  }
}

/** Round answers from an executor (request JSON in, outcomes JSON out), or none granted. */
function executorRounds(executor) {
  if (executor === null) {
    return () => 0n; // "0: no executor is granted": the procedure is a dry run
  }
  return (instance, request) => instance.newBuffer(utf8.encode(executor(request)));
}

/** One instance of the module, and the host's half of the contract for it. */
class Instance {
  /**
   * @param {WebAssembly.Module} wasmModule
   * @param {(instance: Instance, request: string) => bigint} answerRound
   *   what execute_round returns for a request (see executorRounds)
   */
  constructor(wasmModule, answerRound) {
    this.answerRound = answerRound;
    this.procedure = null; // the input of the running procedure, to check its rounds
    this.rounds = []; // the round requests of the running procedure
    this.panic = null;
    this.broken = false;
    this.tempDir = fs.mkdtempSync(path.join(os.tmpdir(), "node-host-"));
    this.stdoutFd = fs.openSync(path.join(this.tempDir, "stdout"), "a+");
    this.printedUpTo = 0;
    try {
      this.instantiate(wasmModule);
    } catch (error) {
      this.close();
      throw error;
    }
  }

  instantiate(wasmModule) {
    // Grant nothing but the five functions the ABI names: no files, clock,
    // arguments or environment variables.
    const wasi = new WASI({
      version: "preview1",
      args: [],
      env: {},
      preopens: {},
      stdout: this.stdoutFd,
      stderr: 2,
    });
    const { fd_write, random_get, environ_sizes_get, environ_get } = wasi.wasiImport;
    const imports = {
      host: {
        execute_round: (ptr, len) => this.executeRound(u32(ptr), u32(len)),
        report_panic: (ptr, len) => {
          this.panic = strictUtf8.decode(this.read(u32(ptr), u32(len)));
        },
      },
      wasi_snapshot_preview1: {
        fd_write,
        random_get,
        environ_sizes_get,
        environ_get,
        proc_exit: (code) => {
          throw new ContractError(`the module called proc_exit(${code})`); // a trap, says the ABI
        },
      },
    };
    this.exports = new WebAssembly.Instance(wasmModule, imports).exports;
    checkExports(this.exports);
    // Node's WASI must be told the memory; the module itself needs no _initialize.
    wasi.initialize({ exports: { memory: this.exports.memory } });
  }

  close() {
    fs.closeSync(this.stdoutFd);
    fs.rmSync(this.tempDir, { recursive: true, force: true });
  }

  /** Call an export. A trap, or an import that threw, leaves the instance unusable. */
  call(name, ...args) {
    if (this.broken) {
      throw new ContractError(`${name}: the instance trapped before and was discarded`);
    }
    try {
      return this.exports[name](...args);
    } catch (error) {
      this.broken = true;
      const why = this.panic !== null ? `the module panicked: ${this.panic}` : error.message;
      throw new ContractError(`${name} trapped: ${why}`);
    }
  }

  // Memory may grow during any call, which detaches an old view: take a new one each time.
  read(ptr, len) {
    const memory = new Uint8Array(this.exports.memory.buffer);
    if (ptr + len > memory.length) {
      throw new ContractError(
        `[${ptr}, ${ptr}+${len}) passes the end of memory (${memory.length})`,
      );
    }
    return memory.slice(ptr, ptr + len);
  }

  write(ptr, bytes) {
    new Uint8Array(this.exports.memory.buffer).set(bytes, ptr);
  }

  alloc(len) {
    const ptr = u32(this.call("alloc", len));
    if (ptr === 0) {
      throw new ContractError(`alloc(${len}) returned 0: the module's memory is exhausted`);
    }
    return ptr;
  }

  dealloc(ptr, len) {
    const status = this.call("dealloc", ptr, len);
    if (status !== 0) {
      throw new ContractError(`dealloc(${ptr}, ${len}) returned ${status}: not a live buffer`);
    }
  }

  /** `bytes` in a new buffer from alloc, packed: what execute_round returns to hand it over. */
  newBuffer(bytes) {
    const ptr = this.alloc(bytes.length);
    this.write(ptr, bytes);
    return pack(ptr, bytes.length);
  }

  /** Run `use(ptr, len)` with `bytes` in an input buffer of at least `capacity`, then free it. */
  withInput(bytes, use, capacity = bytes.length) {
    const size = Math.max(bytes.length, capacity);
    const ptr = this.alloc(size);
    this.write(ptr, bytes);
    try {
      return use(ptr, bytes.length, size);
    } finally {
      if (!this.broken) {
        this.dealloc(ptr, size);
      }
    }
  }

  /** crate_version: its text lies in static memory, to copy and never to free. */
  crateVersion() {
    const { ptr, len } = unpack(this.call("crate_version"));
    return strictUtf8.decode(this.read(ptr, len));
  }

  /** The text of a packed reply, copied out and then freed with free_mem. */
  takeReply(packed) {
    const { ptr, len } = unpack(packed);
    if (ptr === 0) {
      throw new ContractError(`expected a packed reply, got ${packed}`);
    }
    const text = strictUtf8.decode(this.read(ptr, len));
    const status = this.call("free_mem", ptr);
    if (status !== 0) {
      throw new ContractError(`free_mem(${ptr}) of a reply returned ${status}`);
    }
    return text;
  }

  /** What the module printed on fd 1 since the last time this was asked. */
  takePrinted() {
    const end = fs.fstatSync(this.stdoutFd).size;
    const bytes = Buffer.alloc(end - this.printedUpTo);
    fs.readSync(this.stdoutFd, bytes, 0, bytes.length, this.printedUpTo);
    this.printedUpTo = end;
    return bytes.toString("utf8");
  }

  /** print_string or print_int: null when printed (0), else the error reply. */
  printResult(packed) {
    return packed === 0n ? null : parseReply(this.takeReply(packed));
  }

  printString(bytes) {
    const reply = this.withInput(bytes, (ptr, len) =>
      this.printResult(this.call("print_string", ptr, len)),
    );
    return { reply, printed: this.takePrinted() };
  }

  printInt(number) {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setInt32(0, number, true); // little-endian two's complement
    const reply = this.withInput(bytes, (ptr) => this.printResult(this.call("print_int", ptr)));
    return { reply, printed: this.takePrinted() };
  }

  /** From now until endProcedure, execute_round checks its requests against `input`. */
  beginProcedure(input) {
    this.procedure = procedureInput(input);
    this.rounds = [];
  }

  endProcedure() {
    this.procedure = null;
  }

  /** Run a procedure with `call(ptr, len, size)` on its input; its rounds are checked. */
  runProcedure(input, call, capacity) {
    this.beginProcedure(input);
    try {
      return this.withInput(utf8.encode(input), call, capacity);
    } finally {
      this.endProcedure();
    }
  }

  /** start_procedure: the reply document's text. */
  startProcedure(input) {
    return this.runProcedure(input, (ptr, len) =>
      this.takeReply(this.call("start_procedure", ptr, len)),
    );
  }

  /**
   * start_procedure_into with one buffer of `capacity` bytes for the input
   * and the reply: the reply's text, and whether it was written there.
   */
  startProcedureInto(input, capacity) {
    return this.runProcedure(
      input,
      (ptr, len, size) => {
        const { ptr: replyPtr, len: replyLen } = unpack(
          this.call("start_procedure_into", ptr, len, ptr, size),
        );
        if (replyPtr !== 0) {
          return { text: this.takeReply(pack(replyPtr, replyLen)), intoBuffer: false };
        }
        if (replyLen > size) {
          throw new ContractError(`start_procedure_into wrote ${replyLen} bytes into ${size}`);
        }
        return { text: strictUtf8.decode(this.read(ptr, replyLen)), intoBuffer: true };
      },
      capacity,
    );
  }

  /** host.execute_round: check the request is one the input allows, then answer it. */
  executeRound(ptr, len) {
    const request = strictUtf8.decode(this.read(ptr, len));
    const round = JSON.parse(request);
    this.rounds.push(round);
    checkRound(round, this.procedure, this.rounds);
    return this.answerRound(this, request);
  }
}

/** The input as the module will read it, to check rounds against; null if it is not an object. */
function procedureInput(text) {
  try {
    const input = JSON.parse(text);
    return input !== null && typeof input === "object" ? input : null;
  } catch {
    return null;
  }
}

/**
 * A round asks only for what the procedure's input allows (ABI "execute_round"):
 * anything else is a broken module, and this host runs nothing for it but
 * throws, which abandons the call and the instance.
 */
function checkRound(round, input, rounds) {
  const broken = (why) => {
    throw new ContractError(`broken module: round ${JSON.stringify(round)} ${why}`);
  };
  if (input === null) {
    broken("asked outside start_procedure");
  }
  if (round.action !== input.action || round.timeout !== input.timeout) {
    broken("has another action or timeout than the input");
  }
  if (round.attempt !== rounds.length || !Array.isArray(round.hosts) || round.hosts.length === 0) {
    broken(`is not attempt ${rounds.length} for a list of hosts`);
  }
  if (new Set(round.hosts).size !== round.hosts.length) {
    broken("asks for a host twice");
  }
  for (const host of round.hosts) {
    const asked = rounds.filter((earlier) => earlier.hosts.includes(host)).length;
    if (!Array.isArray(input.host_list) || !input.host_list.includes(host)) {
      broken(`asks for ${host}, which is not in host_list`);
    }
    if (asked > 1 + input.retries) {
      broken(`asks for ${host}, which has no attempts left`);
    }
  }
}

function loadModule(modulePath) {
  const wasmModule = new WebAssembly.Module(fs.readFileSync(modulePath));
  checkImports(wasmModule);
  return wasmModule;
}

/** Every vector through both calls, which must agree; the parsed replies in order. */
function runVectors(modulePath, vectorsPath) {
  const wasmModule = loadModule(modulePath);
  const answers = [];
  for (const vector of JSON.parse(fs.readFileSync(vectorsPath, "utf8"))) {
    // An instance per vector, since each vector grants its own executor.
    const network = vector.network === null ? null : simulatedNetwork(vector.network);
    const instance = new Instance(wasmModule, executorRounds(network));
    try {
      const plain = instance.startProcedure(vector.input);
      const into = instance.startProcedureInto(vector.input, 64 * 1024);
      if (into.text !== plain) {
        throw new ContractError(
          `${vector.name}: start_procedure said ${plain}, start_procedure_into ${into.text}`,
        );
      }
      const live = instance.call("live_allocations");
      if (live !== 0) {
        throw new ContractError(`${vector.name}: ${live} buffers live after the calls`);
      }
      answers.push(parseReply(plain));
    } finally {
      instance.close();
    }
  }
  return answers;
}

const TUTORIAL_INPUT =
  '{"timeout":10,"retries":3,"host_list":["server1","server2"],"action":"reboot","job_id":1}';
const SERVER1_DOWN = simulatedNetwork({ down: ["server1"] });

/** The error kind of a reply (its text or parsed), "ok", or "printed" for print's 0 (null). */
function kindOf(reply) {
  if (reply === null) {
    return "printed";
  }
  const document = typeof reply === "string" ? parseReply(reply) : reply;
  return "ok" in document ? "ok" : document.error.kind;
}

/** The tutorial's procedure, step by step as in "A call traced step by step". */
function tutorial(instance) {
  const bytes = utf8.encode(TUTORIAL_INPUT);
  const ptr = instance.alloc(bytes.length);
  instance.write(ptr, bytes);
  const liveWithInput = instance.call("live_allocations");
  instance.beginProcedure(TUTORIAL_INPUT);
  const packed = instance.call("start_procedure", ptr, bytes.length);
  instance.endProcedure();
  instance.dealloc(ptr, bytes.length);
  const { ptr: replyPtr, len: replyLen } = unpack(packed);
  const reply = strictUtf8.decode(instance.read(replyPtr, replyLen));
  return {
    input_length: bytes.length,
    live_allocations_with_input: liveWithInput,
    rounds: instance.rounds,
    reply: parseReply(reply),
    reply_length: replyLen,
    free_mem_first: instance.call("free_mem", replyPtr),
    free_mem_second: instance.call("free_mem", replyPtr),
    live_allocations_after: instance.call("live_allocations"),
  };
}

/** Bad pointers, lengths and bytes handed to the module, bad frees, and what comes back. */
function errorPaths(instance) {
  const errors = {};
  const print = (name, ptr, len) => {
    errors[name] = kindOf(instance.printResult(instance.call("print_string", ptr, len)));
  };
  const four = instance.alloc(4);
  print("print_string, a pointer not from alloc", four + 64, 4);
  print("print_string, a range past the end of its buffer", four, 5);
  print("print_string, a pointer past 2 GiB", 0xffff_ff00, 4);
  instance.dealloc(four, 4);
  print("print_string, a freed buffer", four, 4);
  const printInt = (name, ptr) => {
    errors[name] = kindOf(instance.printResult(instance.call("print_int", ptr)));
  };
  printInt("print_int, a freed buffer", four);
  const three = instance.alloc(3);
  printInt("print_int, a 3-byte buffer", three);
  instance.dealloc(three, 3);
  const notUtf8 = instance.printString(Uint8Array.of(0x61, 0xff));
  errors["print_string, not UTF-8"] = kindOf(notUtf8.reply);

  // A reply kept, not freed, to hand back as an input.
  const kept = instance.runProcedure(TUTORIAL_INPUT, (ptr, len) =>
    unpack(instance.call("start_procedure", ptr, len)),
  );
  errors["start_procedure, a reply as its input"] = kindOf(
    instance.takeReply(instance.call("start_procedure", kept.ptr, kept.len)),
  );
  errors["print_string, a reply as its input"] = kindOf(
    instance.printResult(instance.call("print_string", kept.ptr, kept.len)),
  );
  errors["free_mem, inside a reply"] = instance.call("free_mem", kept.ptr + 1);
  errors["dealloc, a reply with a wrong length"] = instance.call("dealloc", kept.ptr, kept.len + 1);
  errors["dealloc, a reply with its length"] = instance.call("dealloc", kept.ptr, kept.len);
  errors["free_mem, a reply freed with dealloc"] = instance.call("free_mem", kept.ptr);

  const invalid = instance.withInput(Uint8Array.of(0x7b, 0xc3, 0x28), (ptr, len) =>
    parseReply(instance.takeReply(instance.call("start_procedure", ptr, len))),
  );
  errors["start_procedure, not UTF-8"] = invalid.error;

  const buffer = instance.alloc(8);
  errors["dealloc, a wrong length"] = instance.call("dealloc", buffer, 7);
  errors["free_mem, a buffer from alloc"] = instance.call("free_mem", buffer);
  errors["dealloc, the first time"] = instance.call("dealloc", buffer, 8);
  errors["dealloc, the second time"] = instance.call("dealloc", buffer, 8);
  errors["alloc(2^31)"] = u32(instance.call("alloc", 2 ** 31));
  const empty = u32(instance.call("alloc", 0));
  errors["alloc(0) is not 0"] = empty !== 0;
  errors["dealloc(alloc(0), 0)"] = instance.call("dealloc", empty, 0);
  return errors;
}

/** start_procedure_into's own paths: too small, an output not inside a live buffer. */
function intoErrors(instance, wasmModule) {
  const errors = {};
  const expected = instance.startProcedure(TUTORIAL_INPUT);
  const fits = instance.startProcedureInto(TUTORIAL_INPUT, 4096);
  errors["start_procedure_into, a buffer large enough"] = {
    into_buffer: fits.intoBuffer,
    same_as_start_procedure: fits.text === expected,
  };
  const small = instance.startProcedureInto(TUTORIAL_INPUT, 100); // the reply is ~170 bytes
  errors["start_procedure_into, a buffer too small"] = {
    into_buffer: small.intoBuffer,
    same_as_start_procedure: small.text === expected,
  };
  const outside = (name, outPtr, outCap) => {
    const reply = instance.runProcedure(TUTORIAL_INPUT, (ptr, len) =>
      instance.takeReply(instance.call("start_procedure_into", ptr, len, outPtr(ptr), outCap)),
    );
    errors[name] = { kind: kindOf(reply), rounds: instance.rounds.length };
  };
  outside("start_procedure_into, an output not from alloc", (ptr) => ptr + 4096, 256);
  outside("start_procedure_into, an output past its buffer", (ptr) => ptr, 4096);
  outside("start_procedure_into, an output past 2 GiB", () => 0xffff_0000, 256);

  // The host frees the output buffer from inside execute_round (dealloc may be
  // called from an import): the reply must then come packed.
  let output = 0;
  const freeing = new Instance(wasmModule, (self, request) => {
    if (self.rounds.length === 1) {
      self.dealloc(output, 1024);
    }
    return executorRounds(SERVER1_DOWN)(self, request);
  });
  try {
    const input = utf8.encode(TUTORIAL_INPUT);
    const ptr = freeing.alloc(input.length);
    freeing.write(ptr, input);
    output = freeing.alloc(1024);
    freeing.beginProcedure(TUTORIAL_INPUT);
    const packed = freeing.call("start_procedure_into", ptr, input.length, output, 1024);
    freeing.endProcedure();
    freeing.dealloc(ptr, input.length);
    errors["start_procedure_into, its output freed inside execute_round"] = {
      packed: unpack(packed).ptr !== 0,
      reply: parseReply(freeing.takeReply(packed)),
      live_allocations_after: freeing.call("live_allocations"),
    };
  } finally {
    freeing.close();
  }
  return errors;
}

/** execute_round answers that are not a whole buffer of outcomes, and no answer at all. */
function roundErrors(wasmModule) {
  const run = (answerRound, afterwards = () => ({})) => {
    const instance = new Instance(wasmModule, answerRound);
    try {
      const reply = parseReply(instance.startProcedure(TUTORIAL_INPUT));
      const after = afterwards(instance);
      return { reply, ...after, live_allocations_after: instance.call("live_allocations") };
    } finally {
      instance.close();
    }
  };
  // A buffer the module does not take stays the host's, to free once the call is over.
  const untaken = [];
  const partOfABuffer = (instance, request) => {
    const { ptr, len } = unpack(instance.newBuffer(utf8.encode(SERVER1_DOWN(request))));
    untaken.push({ ptr, len });
    return pack(ptr + 1, len - 1);
  };
  const freeUntaken = (instance) => ({
    dealloc_untaken: untaken.map(({ ptr, len }) => instance.call("dealloc", ptr, len)),
  });
  return {
    "execute_round, an answer that is part of a buffer": run(partOfABuffer, freeUntaken),
    "execute_round, the wrong number of outcomes": run((instance) =>
      instance.newBuffer(utf8.encode('[{"status":"ok"}]')),
    ),
    "execute_round, stops answering after round 1": run((instance, request) =>
      instance.rounds.length === 1 ? executorRounds(SERVER1_DOWN)(instance, request) : 0n,
    ),
  };
}

/** Every export called on purpose; the report that tests/test_node_host.py checks. */
function exercise(modulePath) {
  const wasmModule = loadModule(modulePath);
  const instance = new Instance(wasmModule, executorRounds(SERVER1_DOWN));
  try {
    const texts = ["Grüße aus Node, 中文, 🦀", "", "embedded\0NUL, not truncated", "two\nlines"];
    const report = {
      abi_version: instance.call("abi_version"),
      crate_version: instance.crateVersion(),
      print_string: texts.map((text) => ({ text, ...instance.printString(utf8.encode(text)) })),
      print_int: [0, 42, -7, 2 ** 31 - 1, -(2 ** 31)].map((number) => ({
        number,
        ...instance.printInt(number),
      })),
      tutorial: tutorial(instance),
      errors: errorPaths(instance),
      into: intoErrors(instance, wasmModule),
      rounds: roundErrors(wasmModule),
    };
    report.printed_by_error_paths = instance.takePrinted();
    report.live_allocations = instance.call("live_allocations");
    return report;
  } finally {
    instance.close();
  }
}

function main(argv) {
  const [mode, ...args] = argv;
  if (mode === "vectors" && args.length === 2) {
    return runVectors(...args);
  }
  if (mode === "exercise" && args.length === 1) {
    return exercise(...args);
  }
  process.stderr.write(
    "usage: node host.mjs vectors <module.wasm> <vectors.json>\n" +
      "       node host.mjs exercise <module.wasm>\n",
  );
  process.exit(2);
}

try {
  process.stdout.write(`${JSON.stringify(main(process.argv.slice(2)))}\n`);
} catch (error) {
  process.stderr.write(`node host: ${error.message}\n`);
  process.exitCode = 1;
}
