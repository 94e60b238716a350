"""The browser build (wasm/, the same Rust core through wasm-bindgen) in real
headless Chromium, driven by Playwright: the demo page end to end, and the
shared input vectors answered as docs/ABI.md's rules say (tests/vectors.py)."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, tutorial_input
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright
from vectors import VECTORS, assert_documented_answer, vector_params

CHROMIUM = Path("/usr/bin/chromium")
SITE = ROOT / "wasm/www"
SCREENSHOT = ROOT / "docs/browser-demo.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The page, served from wasm/www on 127.0.0.1 as `just serve` does."""
    if not (SITE / "pkg/rust_lib_web_bg.wasm").exists():
        pytest.fail(f"{SITE / 'pkg'} is missing: run `just build-web`")
    handler = functools.partial(QuietHandler, directory=str(SITE))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}/"
        server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `just setup-browser`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def console() -> list[str]:
    """What the page logs to the console, in order."""
    return []


@pytest.fixture
def page(browser: Browser, site: str, console: list[str]) -> Iterator[Page]:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def logged(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)
        console.append(message.text)

    page.on("console", logged)
    page.goto(site)
    expect(page.locator("#status")).to_have_text("Ready: the module runs in this page.")
    yield page
    page.close()
    assert errors == [], "the page logged errors"


def evaluate_within(page: Page, script: str, arg: Any = None, seconds: float = 10) -> Any:
    """``page.evaluate(script, arg)`` for a script that may await: it fails
    after ``seconds`` instead of hanging, as Playwright would wait forever."""
    return page.evaluate(
        f"""([arg, ms]) => Promise.race([
            ({script})(arg),
            new Promise((_, reject) =>
                setTimeout(() => reject(new Error(`no answer within ${{ms}} ms`)), ms)),
        ])""",
        [arg, seconds * 1000],
    )


def test_the_tutorials_procedure_with_server1_down(page: Page) -> None:
    page.get_by_label("State of server1").select_option("down")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result-result")).to_have_text("partial")
    expect(page.locator("#result-message")).to_have_text("1 host failed")
    expect(page.locator("#result-dry-run")).to_have_text("no")
    rows = page.locator("#failures tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td")).to_have_text(["server1", "4", "host is down"])
    expect(page.locator("#raw")).to_contain_text('"failed_hosts": [\n      "server1"\n    ]')
    page.get_by_role("button", name="print_string").click()
    expect(page.locator("#output")).to_contain_text("Grüße 🦀")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOT, full_page=True)


def test_a_flaky_host_recovers_and_a_dry_run_runs_nothing(page: Page) -> None:
    page.get_by_label("State of server2").select_option("flaky")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result-result")).to_have_text("success")
    expect(page.locator("#failures")).to_be_hidden()
    page.get_by_label("Run on the simulated network").uncheck()
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result-dry-run")).to_contain_text("yes")
    expect(page.locator("#result-message")).to_have_text(
        'dry run: no executor granted, "reboot" not run on 2 hosts'
    )


def test_the_network_follows_the_host_list(page: Page) -> None:
    page.get_by_label("Hosts, one a line").fill("web1\ndb1.example.com")
    expect(page.locator("#network tbody tr")).to_have_count(2)
    page.get_by_label("State of db1.example.com").select_option("down")
    page.get_by_label("Hosts, one a line").fill("web1\ndb1.example.com\nweb2")
    expect(page.get_by_label("State of db1.example.com")).to_have_value("down")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result-message")).to_have_text("1 host failed")


@pytest.mark.parametrize(
    ("field", "typed", "error"),
    [
        ("#timeout", "0", "timeout must be a whole number from 1 to 255; got 0"),
        ("#timeout", "ten", 'timeout must be a whole number from 1 to 255; got "ten"'),
        ("#retries", "-1", "retries must be a whole number from 0 to 255; got -1"),
        (
            "#job_id",
            "9007199254740993",
            "job_id must be a whole number from -2147483648 to 2147483647; got 9007199254740993",
        ),
        ("#job_id", "", 'job_id must be a whole number from -2147483648 to 2147483647; got ""'),
        (
            "#action",
            "rm -rf",
            'action must be an action name: 1 to 64 ASCII letters, digits, "_", "-" or ".", '
            'starting with a letter or digit; got "rm -rf"',
        ),
        (
            "#host_list",
            "server1\nserver 2",
            "host_list[1] must be a host name (letters, digits, hyphens and dots, RFC 1123); "
            'got "server 2" (" " is not an ASCII letter, digit, hyphen or dot)',
        ),
        (
            "#host_list",
            "server1\nSERVER1",
            'host_list[1] must not repeat an earlier host (names ignore case); got "SERVER1"',
        ),
    ],
)
def test_invalid_input_is_shown_next_to_its_field(
    page: Page, field: str, typed: str, error: str
) -> None:
    page.locator(field).fill(typed)
    page.get_by_role("button", name="Run").click()
    expect(page.locator(f"{field}-error")).to_contain_text(error)
    expect(page.locator(field)).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#result dl")).to_be_hidden()
    # Only that field is marked, and fixing it clears the error.
    expect(page.locator("[aria-invalid=true]")).to_have_count(1)
    page.reload()
    page.get_by_role("button", name="Run").click()
    expect(page.locator(f"{field}-error")).to_have_text("")
    expect(page.locator("#result-result")).to_have_text("success")


def test_print_string_prints_non_ascii_text_to_the_panel_and_the_console(
    page: Page, console: list[str]
) -> None:
    text = "Grüße, 你好, здравствуй 🦀\u00a0!"
    page.get_by_label("Text for print_string").fill(text)
    page.get_by_role("button", name="print_string").click()
    expect(page.locator("#output")).to_have_text(text + "\n")
    assert console[-1] == text


def test_print_int_prints_an_i32_and_refuses_anything_else(page: Page) -> None:
    number = page.get_by_label("Number for print_int")
    number.fill("-2147483648")
    page.get_by_role("button", name="print_int").click()
    expect(page.locator("#output")).to_have_text("Python gave us number -2147483648\n")
    for typed, error in [
        ("2147483648", "2147483648 is not an integer in the i32 range"),
        ("1.5", "1.5 is not an integer in the i32 range"),
        ("forty-two", "expected a number, got string"),
    ]:
        number.fill(typed)
        page.get_by_role("button", name="print_int").click()
        expect(page.locator("#print-error")).to_have_text(error)
    expect(page.locator("#output")).to_have_text("Python gave us number -2147483648\n")


def test_wrong_types_get_error_replies_and_never_wear_the_module_out(page: Page) -> None:
    # Each call that threw through the module would leak one of wasm-bindgen's
    # 1,024 slots for JS values: 1,100 rounds of them would break it.
    answers = evaluate_within(
        page,
        """async input => {
            const {print_int, print_string, resume_procedure, start_procedure} = window.demo.rust;
            const seen = new Set();
            const see = (reply) => seen.add(JSON.stringify(JSON.parse(reply).error ?? "ok"));
            for (let i = 0; i < 1100; i++) {
                see(start_procedure(123, true));
                see(start_procedure(new String(input), true));
                see(print_string({}));
                see(print_int("2"));
                see(start_procedure(input, 42));
                see(start_procedure(input));
                see(resume_procedure(7));
            }
            return {seen: [...seen].map((text) => JSON.parse(text)),
                    after: (await window.demo.runProcedure(input, () => '[{"status":"ok"}]')).ok};
        }""",
        json.dumps(tutorial_input(host_list=["a"], retries=0)),
    )
    assert answers["after"]["result"] == "success"
    assert {error["kind"] for error in answers["seen"]} == {"invalid_type"}, "every call refused"
    assert {error["message"] for error in answers["seen"]} == {
        "expected a string, got number",
        "expected a string, got object",
        "expected a number, got string",
        "expected a boolean, got number",
        "expected a boolean, got undefined",
    }


def test_a_wrong_argument_runs_nothing_and_the_procedure_waits(page: Page) -> None:
    replies = page.evaluate(
        """input => {
            const {resume_procedure, start_procedure} = window.demo.rust;
            const first = JSON.parse(start_procedure(input, true));
            const refused = [start_procedure(input, "yes"), resume_procedure(null)];
            const last = JSON.parse(resume_procedure('[{"status":"ok"}]'));
            return {first, refused: refused.map((reply) => JSON.parse(reply)), last};
        }""",
        json.dumps(tutorial_input(host_list=["a"], retries=0, job_id=5)),
    )
    assert replies["first"]["round"]["hosts"] == ["a"]
    assert [reply["error"]["message"] for reply in replies["refused"]] == [
        "expected a boolean, got string",
        "expected a string, got object",
    ]
    assert replies["last"]["ok"]["job_id"] == 5


def test_an_asynchronous_executor_drives_the_procedure_round_by_round(page: Page) -> None:
    answers = evaluate_within(
        page,
        """async input => {
            const {simulatedNetwork} = await import("./network.js");
            const network = simulatedNetwork({down: ["server1"]});
            const rounds = [];
            const printedBetweenSteps = [];
            const later = (round) => new Promise((resolve) => setTimeout(() => {
                rounds.push(JSON.parse(round));
                // Nothing of the module is on the stack: its other functions answer.
                printedBetweenSteps.push(JSON.parse(window.demo.rust.print_int(rounds.length)).ok);
                resolve(network(round));
            }, 50));
            return {asynchronous: await window.demo.runProcedure(input, later),
                    synchronous: await window.demo.runProcedure(input, network),
                    rounds, printedBetweenSteps};
        }""",
        json.dumps(tutorial_input()),
    )
    assert answers["asynchronous"] == answers["synchronous"]
    assert answers["asynchronous"]["ok"]["failures"] == [
        {"host": "server1", "attempts": 4, "reason": "host is down"}
    ]
    assert answers["rounds"] == [
        {"action": "reboot", "timeout": 10, "attempt": 1, "hosts": ["server1", "server2"]},
        {"action": "reboot", "timeout": 10, "attempt": 2, "hosts": ["server1"]},
        {"action": "reboot", "timeout": 10, "attempt": 3, "hosts": ["server1"]},
        {"action": "reboot", "timeout": 10, "attempt": 4, "hosts": ["server1"]},
    ]
    assert answers["printedBetweenSteps"] == [f"Python gave us number {n}" for n in range(1, 5)]


@pytest.mark.parametrize(
    ("second_round", "reason"),
    [
        ('() => { throw "down"; }', "the executor threw down"),
        ('() => { throw new Error("down"); }', "the executor threw down"),
        ('() => Promise.reject(new Error("down"))', "the executor threw down"),
        (
            '() => new Promise((_, reject) => setTimeout(() => reject("down"), 50))',
            "the executor threw down",
        ),
        (
            '() => { throw {get message() { throw new Error("no"); }}; }',
            "the executor threw a object without a message",
        ),
        ("() => 7", "the executor's answer was unusable: it is not a string"),
        ("async () => null", "the executor's answer was unusable: it is not a string"),
    ],
)
def test_an_executor_that_throws_or_rejects_fails_the_hosts_of_that_round(
    page: Page, second_round: str, reason: str
) -> None:
    # server1 fails the first round and server2 succeeds; the executor then
    # breaks on the second round, which is server1's alone.
    reply = evaluate_within(
        page,
        f"""input => {{
            const first = () => '[{{"status":"failed","reason":"down"}},{{"status":"ok"}}]';
            const executors = [first, {second_round}];
            let round = 0;
            return window.demo.runProcedure(input, (request) => executors[round++](request));
        }}""",
        json.dumps(tutorial_input(retries=1)),
    )
    assert reply["ok"]["failures"] == [{"host": "server1", "attempts": 2, "reason": reason}]
    assert reply["ok"]["result"] == "partial"


def test_an_executor_that_never_answers_times_out_its_round(page: Page) -> None:
    reply = evaluate_within(
        page,
        "input => window.demo.runProcedure(input, () => new Promise(() => {}))",
        json.dumps(tutorial_input(timeout=1, retries=0, host_list=["a", "b"])),
    )
    reason = "the executor did not answer within 1 s"
    assert reply["ok"]["failures"] == [
        {"host": host, "attempts": 1, "reason": reason} for host in ["a", "b"]
    ]


def test_a_procedure_abandoned_midway_leaves_the_module_working(page: Page) -> None:
    replies = evaluate_within(
        page,
        """async ([tutorial, other]) => {
            const {cancel_procedure, resume_procedure, start_procedure} = window.demo.rust;
            const step = (reply) => JSON.parse(reply);
            // By hand: a second start abandons the first; cancel abandons the last.
            const byHand = [step(start_procedure(tutorial, true)), step(start_procedure(other, true)),
                            step(resume_procedure('[{"status":"ok"}]')),
                            step(resume_procedure('[{"status":"ok"}]'))];
            step(start_procedure(tutorial, true));
            const cancelled = [cancel_procedure(), cancel_procedure()];
            // Through the page's runner: a run waiting for its executor is
            // abandoned by the next, and its late answer goes nowhere.
            let answerLate;
            const abandoned = window.demo.runProcedure(
                tutorial, () => new Promise((resolve) => { answerLate = resolve; }));
            const next = await window.demo.runProcedure(other, () => '[{"status":"ok"}]');
            answerLate('[{"status":"ok"},{"status":"ok"}]');
            return {byHand, cancelled, next, abandoned: await abandoned,
                    after: step(resume_procedure('[{"status":"ok"}]'))};
        }""",
        [
            json.dumps(tutorial_input()),
            json.dumps(tutorial_input(host_list=["other"], retries=0, job_id=2)),
        ],
    )
    started, restarted, finished, over = replies["byHand"]
    assert started["round"]["hosts"] == ["server1", "server2"]
    assert restarted["round"]["hosts"] == ["other"]
    assert finished["ok"]["job_id"] == 2
    assert over["error"]["kind"] == "invalid_argument"
    assert replies["cancelled"] == [True, False]
    assert replies["next"]["ok"]["job_id"] == 2
    assert replies["abandoned"] is None
    assert replies["after"]["error"]["kind"] == "invalid_argument", "the late answer was taken"
    # And the page itself still runs procedures.
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result-result")).to_have_text("success")


def test_a_lone_surrogate_is_refused_not_replaced(page: Page) -> None:
    reply = evaluate_within(page, "() => window.demo.runVector({input: '\\ud800', network: null})")
    assert reply["error"]["kind"] == "invalid_utf8"


@pytest.fixture(scope="module")
def vector_answers(browser: Browser, site: str) -> list[dict[str, Any]]:
    """The page's answer to every vector, {reply, rounds}, on one page: its runner
    driving the module with the vector's simulated network, each round it ran kept."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(site)
    expect(page.locator("#status")).to_have_text("Ready: the module runs in this page.")
    answers = [
        evaluate_within(
            page,
            """async (vector) => {
                const {simulatedNetwork} = await import("./network.js");
                const rounds = [];
                const network = vector.network && simulatedNetwork(vector.network);
                const executor = network && ((round) => {
                    rounds.push(JSON.parse(round));
                    return network(round);
                });
                return {reply: await window.demo.runProcedure(vector.input, executor || undefined),
                        rounds};
            }""",
            vector,
        )
        for vector in VECTORS
    ]
    page.close()
    assert errors == [], "the page threw"
    return answers


@pytest.mark.parametrize("vector", vector_params())
def test_the_shared_vectors_get_the_documented_answers(
    vector_answers: list[dict[str, Any]], vector: dict[str, Any]
) -> None:
    answer = vector_answers[VECTORS.index(vector)]
    assert_documented_answer(vector, answer["reply"], answer["rounds"])
