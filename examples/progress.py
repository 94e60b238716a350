"""A procedure on 2,000 hosts of a slow network, from asyncio, with a tqdm
progress bar fed by py_host's progress callback.

Each attempt takes 5 ms; one host in 50 fails its first attempt and one in
200 is down, so the bar moves in three rounds.

    .venv/bin/python examples/progress.py
"""

from __future__ import annotations

import asyncio

from tqdm import tqdm

import py_host

HOSTS = [f"web{number:04}" for number in range(2000)]


async def reboot(host: str, action: str, timeout: int) -> py_host.Outcome:
    await asyncio.sleep(0.005)
    number = int(host.removeprefix("web"))
    if number % 200 == 0:
        return py_host.Outcome.failed("host is down")
    return py_host.Outcome.ok()


async def main() -> None:
    flaky = {host for host in HOSTS if int(host[3:]) % 50 == 1}
    tried: set[str] = set()

    async def flaky_reboot(host: str, action: str, timeout: int) -> py_host.Outcome:
        if host in flaky and host not in tried:
            tried.add(host)
            return py_host.Outcome.failed("dropped")
        return await reboot(host, action, timeout)

    procedure = py_host.ProcedureInput(
        timeout=5, retries=2, action="reboot", host_list=HOSTS, job_id=42
    )
    async with await py_host.load_async(executor=flaky_reboot) as rust:
        with tqdm(total=len(HOSTS), unit="host", desc="reboot") as bar:

            def progress(step: py_host.Progress) -> None:
                bar.update(step.hosts_done - bar.n)
                bar.set_postfix(round=step.rounds, failed=step.hosts_failed)

            output = await rust.start_procedure(procedure, progress=progress)
    print(f"{output.result}: {output.message}; failed: {', '.join(output.failed_hosts)}")


if __name__ == "__main__":
    asyncio.run(main())
