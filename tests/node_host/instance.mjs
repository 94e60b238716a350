// One instance of rust_lib.wasm and this host's half of docs/ABI.md for it:
// which modules are refused, how an export is called, what is read back from
// memory and the outbox, and which buffers are whose. Nothing here trusts the
// module further than the document says ("What a host checks").

const ABI_VERSION = 3;

// The only imports a module may have ("Imports"): WASI functions that it never
// calls. This host implements none of them, so each is a function that throws,
// which is a trap for the module. Their types are not checked: a function that
// only throws fits any type.
const TRAPPING_IMPORTS = {
  wasi_snapshot_preview1: ["fd_write", "environ_get", "environ_sizes_get", "proc_exit"],
};

// The exported functions of ABI version 3 and how many parameters each takes.
const EXPORTED_FUNCTIONS = {
  abi_version: 0,
  crate_version: 0,
  alloc: 1,
  dealloc: 2,
  free_mem: 1,
  live_allocations: 0,
  outbox: 0,
  grant_executor: 0,
  print_string: 2,
  print_int: 1,
  start_procedure: 2,
  start_procedure_into: 4,
  resume_procedure: 4,
  cancel_procedure: 0,
};

// The exports whose output the outbox describes when they return ("The outbox").
const PRINTING_EXPORTS = new Set([
  "print_string",
  "print_int",
  "start_procedure",
  "start_procedure_into",
  "resume_procedure",
]);

const OUTBOX_BYTES = 16;
const TRAP_REPORT_MAX_BYTES = 4096;

/** The module broke the contract, or is one this host refuses. */
class ContractError extends Error {}

/** The module trapped; the message carries its trap report when it left one. */
class ModuleTrap extends Error {}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

// JavaScript sees the module's i32 and i64 as signed; the ABI means unsigned
// ("Packed buffers"), or memory past 2 GiB would be misread.
export const u32 = (value) => value >>> 0;

/** A packed i64 as its two unsigned halves. */
export function unpack(packed) {
  const p = BigInt.asUintN(64, packed);
  return { ptr: Number(p >> 32n), len: Number(p & 0xffff_ffffn) };
}

/** Compile a module, refusing one that imports what this host does not define. */
export function loadModule(bytes) {
  const wasmModule = new WebAssembly.Module(bytes);
  for (const { module, name, kind } of WebAssembly.Module.imports(wasmModule)) {
    if (kind !== "function" || !TRAPPING_IMPORTS[module]?.includes(name)) {
      throw new ContractError(`refusing the module: it imports ${module}.${name} (${kind})`);
    }
  }
  return wasmModule;
}

function trappingImports() {
  const imports = {};
  for (const [module, names] of Object.entries(TRAPPING_IMPORTS)) {
    imports[module] = {};
    for (const name of names) {
      imports[module][name] = () => {
        // Thrown through the module: a trap.
        throw new Error(`the module called ${module}.${name}, which traps`);
      };
    }
  }
  return imports;
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

/** A call's return value as JSON can hold it: an i64 is a packed pair. */
function loggable(returned) {
  return typeof returned === "bigint" ? unpack(returned) : returned;
}

/** One instance of the module. After a trap or a broken contract it is discarded for good. */
export class Instance {
  /**
   * @param {WebAssembly.Module} wasmModule from loadModule
   * @param {object} options
   * @param {((round: object) => unknown) | null} options.executor runs a round and
   *   returns (or resolves to) the answer; null grants none: every procedure is a dry run
   * @param {object[] | null} [options.events] when given, every call, write, reply
   *   read and output length is appended to it, for the traced example
   */
  constructor(wasmModule, { executor, events = null }) {
    this.executor = executor;
    this.events = events;
    this.discarded = false;
    this.outboxAddress = null; // known once outbox() has answered
    this.procedureDriven = false; // set by procedure.mjs while it drives one
    this.exports = new WebAssembly.Instance(wasmModule, trappingImports()).exports;
    checkExports(this.exports);
    if (executor !== null) {
      this.call("grant_executor");
    }
    this.outboxAddress = u32(this.call("outbox"));
  }

  record(event) {
    this.events?.push(event);
  }

  /** Mark the instance as discarded, and return `error` for the caller to throw. */
  discard(error) {
    this.discarded = true;
    return error;
  }

  /** The module broke the contract: the instance is discarded, and the error returned to throw. */
  broken(why) {
    return this.discard(new ContractError(`broken module: ${why}`));
  }

  /** Call an export; a trap discards the instance. The output of a printing call goes to stdout. */
  call(name, ...args) {
    if (this.discarded) {
      throw new Error(`${name}: the instance was discarded after a trap or a broken contract`);
    }
    let returned;
    try {
      returned = this.exports[name](...args);
    } catch (error) {
      throw this.discard(new ModuleTrap(`${name} trapped: ${this.trapReason(error)}`));
    }
    this.record({ call: name, args, returned: loggable(returned) });
    if (PRINTING_EXPORTS.has(name)) {
      this.writeOutput();
    }
    return returned;
  }

  /** Why the module trapped: its trap report, or else what the runtime threw. */
  trapReason(error) {
    try {
      return this.trapReport() || error.message;
    } catch (unreadable) {
      return `${error.message} (the trap report is unreadable: ${unreadable.message})`;
    }
  }

  /** The outbox's trap report, read from memory without calling the module; "" when none. */
  trapReport() {
    if (this.outboxAddress === null) {
      return ""; // trapped before outbox() answered: there is nowhere to look
    }
    const { trapPtr, trapLen } = this.readOutbox();
    if (trapLen > TRAP_REPORT_MAX_BYTES) {
      throw new ContractError(`trap_len is ${trapLen}, over the ABI's ${TRAP_REPORT_MAX_BYTES}`);
    }
    return strictUtf8.decode(this.read(trapPtr, trapLen));
  }

  readOutbox() {
    const view = new DataView(this.read(this.outboxAddress, OUTBOX_BYTES).buffer);
    return {
      outputPtr: view.getUint32(0, true),
      outputLen: view.getUint32(4, true),
      trapPtr: view.getUint32(8, true),
      trapLen: view.getUint32(12, true),
    };
  }

  /** What the last printing call printed, written to stdout in the order it came. */
  writeOutput() {
    const { outputPtr, outputLen } = this.readOutbox();
    this.record({ output_len: outputLen });
    if (outputLen > 0) {
      process.stdout.write(this.read(outputPtr, outputLen));
    }
  }

  // Memory may grow during any call, which detaches an old view: take a new one each time.
  memoryBytes() {
    return new Uint8Array(this.exports.memory.buffer);
  }

  /** Unless the module's range [ptr, ptr+len) lies inside memory, discard the instance. */
  checkInMemory(ptr, len) {
    const size = this.memoryBytes().length;
    if (ptr + len > size) {
      throw this.broken(`[${ptr}, ${ptr}+${len}) passes the end of memory (${size} bytes)`);
    }
  }

  /** A copy of the bytes at a range the module gave. */
  read(ptr, len) {
    this.checkInMemory(ptr, len);
    return this.memoryBytes().slice(ptr, ptr + len);
  }

  /** Write into one of this host's own buffers: the only memory a host may write. */
  write(ptr, bytes) {
    this.memoryBytes().set(bytes, ptr);
    if (this.events !== null) {
      this.record({ wrote: new TextDecoder().decode(bytes), at: ptr });
    }
  }

  alloc(len) {
    const ptr = u32(this.call("alloc", len));
    if (ptr === 0) {
      throw new Error(`alloc(${len}) returned 0: the module's memory is exhausted`);
    }
    this.checkInMemory(ptr, len);
    return ptr;
  }

  /** Free one of this host's buffers: anything but 0 is a host bug or a broken module. */
  dealloc(ptr, len) {
    const status = this.call("dealloc", ptr, len);
    if (status !== 0) {
      throw this.broken(`dealloc(${ptr}, ${len}) of a live buffer returned ${status}`);
    }
  }

  /** Run `use(ptr, len)` with `bytes` in a buffer of their own, freed afterwards. */
  withInput(bytes, use) {
    const ptr = this.alloc(bytes.length);
    this.write(ptr, bytes);
    try {
      return use(ptr, bytes.length);
    } finally {
      if (!this.discarded) {
        this.dealloc(ptr, bytes.length);
      }
    }
  }

  /** A packed reply's bytes, copied out and freed at once, before anything else is made of them. */
  takeReply(ptr, len) {
    const bytes = this.read(ptr, len);
    const status = this.call("free_mem", ptr);
    if (status !== 0) {
      throw this.broken(`free_mem(${ptr}) of a reply returned ${status}`);
    }
    return bytes;
  }

  /** A reply document: UTF-8 JSON, one object with exactly one key, one of `keys`. */
  replyDocument(bytes, keys) {
    let text;
    let reply;
    try {
      text = strictUtf8.decode(bytes);
      reply = JSON.parse(text);
    } catch (error) {
      throw this.broken(`a reply that is not UTF-8 JSON (${error.message})`);
    }
    this.record({ reply: text });
    const found = reply !== null && typeof reply === "object" ? Object.keys(reply) : [];
    if (Array.isArray(reply) || found.length !== 1 || !keys.includes(found[0])) {
      throw this.broken(
        `a reply that is not one object with one key (${keys.join(", ")}): ${text}`,
      );
    }
    return reply;
  }

  /** crate_version: its text lies in static memory, to copy and never to free. */
  crateVersion() {
    const { ptr, len } = unpack(this.call("crate_version"));
    return strictUtf8.decode(this.read(ptr, len));
  }

  /** A print call's result: null when it printed (0), else its error reply. */
  printResult(packed) {
    if (packed === 0n) {
      return null;
    }
    const { ptr, len } = unpack(packed);
    return this.replyDocument(this.takeReply(ptr, len), ["error"]);
  }

  printString(bytes) {
    return this.withInput(bytes, (ptr, len) =>
      this.printResult(this.call("print_string", ptr, len)),
    );
  }

  printInt(number) {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setInt32(0, number, true); // little-endian two's complement
    return this.withInput(bytes, (ptr) => this.printResult(this.call("print_int", ptr)));
  }
}
