"""The tutorial's three scenes, through the WebAssembly module instead of a
native library, and its memory leak loop, fixed."""

import time

import py_host

PROCEDURE = py_host.ProcedureInput(
    timeout=10, retries=3, action="reboot", host_list=["server1", "server2"], job_id=1
)
CALLS = 100_000


def main() -> None:
    print("== 1. A string from Python, printed by Rust")
    rust = py_host.load()
    rust.print_string("Python says hi inside Rust!")

    print("\n== 2. An integer from Python, printed by Rust")
    rust.print_int(2)

    print("\n== 3. A procedure on a simulated network where server1 is down")
    network = py_host.SimulatedNetwork(down={"server1"})
    with py_host.load(executor=network) as rust:
        output = rust.start_procedure(PROCEDURE)
        print(output.model_dump_json(indent=2))

        print(f"\n== The tutorial's leak loop: start_procedure {CALLS:,} times")
        pages_before = rust.memory_pages
        started = time.perf_counter()
        for _ in range(CALLS):
            rust.start_procedure(PROCEDURE)
        seconds = time.perf_counter() - started
        pages_after = rust.memory_pages
        print(f"linear memory before: {pages_before} pages ({rust.memory_size:,} bytes)")
        print(f"linear memory after:  {pages_after} pages")
        print(f"live allocations after: {rust.live_allocations()}")
        print(f"{seconds:.1f} s, {seconds / CALLS * 1e6:.0f} µs a call")
        if pages_after != pages_before:
            raise SystemExit("linear memory grew: something leaks")


if __name__ == "__main__":
    main()
