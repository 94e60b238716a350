"""The browser build (wasm/, the same Rust core through wasm-bindgen) in real
headless Chromium, driven by Playwright: the demo page end to end, and the
shared input vectors answered exactly as py_host answers them."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, VECTORS, python_answer, tutorial_input
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

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
        ("#timeout", "0", "must be between 1 and 255, got 0"),
        ("#timeout", "ten", 'invalid type: string "ten", expected u8'),
        ("#retries", "-1", "invalid value: integer `-1`, expected u8"),
        ("#job_id", "9007199254740993", "invalid value: integer `9007199254740993`, expected i32"),
        ("#job_id", "", 'invalid type: string "", expected i32'),
        ("#action", "rm -rf", "' ' is not allowed (letters, digits, '_', '-', '.')"),
        (
            "#host_list",
            "server1\nserver 2",
            "host 2: \"server 2\" is not a valid host name: ' ' is not a letter, digit or hyphen",
        ),
        ("#host_list", "server1\nSERVER1", 'host 2: "SERVER1" appears more than once'),
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
    answers = page.evaluate(
        """input => {
            const {print_int, print_string, start_procedure} = window.demo.rust;
            const messageThatThrows = {get message() { throw new Error("no"); }};
            const seen = new Set();
            const see = (reply) => seen.add(JSON.stringify(JSON.parse(reply).error ?? "ok"));
            for (let i = 0; i < 1100; i++) {
                see(start_procedure(123));
                see(start_procedure(new String(input)));
                see(print_string({}));
                see(print_int("2"));
                see(start_procedure(input, 42));
                see(start_procedure(input, () => { throw messageThatThrows; }));
                see(start_procedure(input, () => { throw "down"; }));
                see(start_procedure(input, () => 7));
            }
            return {seen: [...seen].map((text) => JSON.parse(text)),
                    after: JSON.parse(start_procedure(input, () => '[{"status":"ok"}]')).ok};
        }""",
        json.dumps(tutorial_input(host_list=["a"], retries=0)),
    )
    assert answers["after"]["result"] == "success"
    messages = {error["message"] for error in answers["seen"] if error != "ok"}
    assert messages == {
        "expected a string, got number",
        "expected a string, got object",
        "expected a number, got string",
        "the executor must be a function, got number",
    }
    output = page.evaluate(
        """input => JSON.parse(window.demo.rust.start_procedure(input, () => { throw "down"; }))""",
        json.dumps(tutorial_input(host_list=["a"], retries=0)),
    )
    assert output["ok"]["failures"][0]["reason"] == "the executor threw down"


def test_a_lone_surrogate_is_refused_not_replaced(page: Page) -> None:
    reply = page.evaluate("() => window.demo.runVector({input: '\\ud800', network: null})")
    assert reply["error"]["kind"] == "invalid_utf8"


def test_the_shared_vectors_get_the_same_answers_as_py_host(page: Page) -> None:
    for vector in VECTORS:
        browser_answer = page.evaluate("vector => window.demo.runVector(vector)", vector)
        assert browser_answer == python_answer(vector), vector["name"]
