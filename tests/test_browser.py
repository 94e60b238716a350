"""The browser build (wasm/, the same Rust core through wasm-bindgen) in real
headless Chromium, driven by Playwright: the demo page end to end, and the
shared input vectors answered as docs/ABI.md's rules say (tests/vectors.py)."""

from __future__ import annotations

import functools
import http.server
import json
import re
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
CRATE_VERSION = re.findall(r'^version = "(.+)"$', (ROOT / "Cargo.toml").read_text(), re.MULTILINE)[
    0
]
SCREENSHOTS = {
    "1280x800": ROOT / "docs/browser-demo.png",
    "390x844": ROOT / "docs/browser-demo-phone.png",
}
AXE = ROOT / ".tools/axe/node_modules/axe-core/axe.min.js"
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


DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# For tests of the layout: the page at a desktop's size and at a phone's.
BOTH_SIZES = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])


@pytest.fixture
def viewport() -> dict[str, int]:
    return DESKTOP


@pytest.fixture
def page(
    browser: Browser, site: str, console: list[str], viewport: dict[str, int]
) -> Iterator[Page]:
    page = browser.new_page(viewport=viewport, permissions=["clipboard-read", "clipboard-write"])
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


def assert_nothing_runs_off_the_page(page: Page) -> None:
    """The page is no wider than the window, and every control, card, error
    and cell shown lies within it, from its left edge to its right."""
    layout = page.evaluate(
        """() => ({
            scrollWidth: document.documentElement.scrollWidth,
            outside: [...document.querySelectorAll(
                "section, input, textarea, select, button, label, .error, td, pre")]
                .filter((element) => element.getClientRects().length > 0)
                .filter((element) => {
                    const box = element.getBoundingClientRect();
                    return box.left < 0 || box.right > innerWidth + 0.5;
                })
                .map((element) => element.outerHTML.slice(0, 80)),
        })"""
    )
    assert layout["scrollWidth"] <= page.viewport_size["width"]  # type: ignore[index]
    assert layout["outside"] == []


@BOTH_SIZES
def test_every_control_lies_within_the_window(page: Page) -> None:
    assert_nothing_runs_off_the_page(page)
    page.get_by_label("State of server1").select_option("down")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result-result")).to_have_text("partial")
    assert_nothing_runs_off_the_page(page)


@BOTH_SIZES
def test_long_input_wraps_inside_its_card(page: Page) -> None:
    invalid = "a" * 300
    # A valid name as long as names get: 253 characters.
    valid = ".".join(["b" * 63] * 3 + ["c" * 61])
    page.get_by_label("Hosts, one a line").fill(f"{valid}\n{invalid}")
    page.get_by_role("button", name="Run").click()
    # The module's message names the second host by its path (its wording is
    # the module's, docs/ABI.md "Messages"); the 300 characters are in the table.
    expect(page.locator("#host_list-error")).to_contain_text("host_list[1]")
    assert_nothing_runs_off_the_page(page)
    # The name is shown in full, wrapped, and its state can be chosen.
    expect(page.locator("#network tbody td").nth(2)).to_have_text(invalid)
    page.get_by_label(f"State of {valid}").select_option("down")
    page.get_by_label("Hosts, one a line").fill(valid)
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#failures tbody td").first).to_have_text(valid)
    assert_nothing_runs_off_the_page(page)


def type_hosts(page: Page, count: int) -> list[str]:
    """Puts ``count`` hosts in the host list at once, as a paste does
    (Playwright's fill takes seconds for text this long)."""
    hosts = [f"host{n}" for n in range(count)]
    page.get_by_label("Hosts, one a line").evaluate(
        """(list, text) => {
            list.value = text;
            list.dispatchEvent(new Event("input", {bubbles: true}));
        }""",
        "\n".join(hosts),
    )
    expect(page.locator("#network tbody tr")).to_have_count(count)
    return hosts


@BOTH_SIZES
def test_a_keystroke_in_a_long_host_list_touches_only_its_row(page: Page) -> None:
    type_hosts(page, 2000)
    page.get_by_label("State of host0").select_option("down")
    page.evaluate(
        """() => {
            const body = document.querySelector("#network tbody");
            window.firstRow = body.firstElementChild;
            window.rowsReplaced = 0;
            new MutationObserver((changes) => {
                for (const change of changes) window.rowsReplaced += change.removedNodes.length;
            }).observe(body, {childList: true});
        }"""
    )
    hosts = page.get_by_label("Hosts, one a line")
    hosts.press("Control+End")
    hosts.press_sequentially("9x")
    hosts.press("Enter")
    hosts.press_sequentially("new")
    expect(page.get_by_label("State of new")).to_have_value("up")
    expect(page.locator("#network tbody tr")).to_have_count(2001)
    # Each keystroke on the last line replaced that line's row, and no other.
    assert page.evaluate("window.rowsReplaced") <= 6
    assert page.evaluate('window.firstRow === document.querySelector("#network tbody tr")')
    expect(page.get_by_label("State of host0")).to_have_value("down")


@BOTH_SIZES
def test_thousands_of_hosts_keep_the_page_short_and_run_near(page: Page) -> None:
    type_hosts(page, 2000)
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 3 * page.viewport_size["height"]  # type: ignore[index]
    if page.viewport_size == DESKTOP:
        expect(page.get_by_role("button", name="Run")).to_be_in_viewport()
    page.get_by_role("button", name="All flaky").click()
    expect(page.get_by_label("State of host1999")).to_have_value("flaky")
    page.get_by_role("button", name="All down").click()
    expect(page.get_by_label("State of host0")).to_have_value("down")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result-message")).to_have_text("2000 hosts failed")


@BOTH_SIZES
def test_run_brings_the_reply_into_view_focused_and_says_it(page: Page) -> None:
    type_hosts(page, 2000)
    page.get_by_label("State of host1", exact=True).select_option("down")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result-result")).to_have_text("partial")
    reply = page.get_by_role("heading", name="Reply")
    expect(reply).to_be_focused()
    expect(reply).to_be_in_viewport()
    expect(page.locator("#announce")).to_have_text("Reply: partial, 1 host failed")
    # The same reply again is said again.
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#announce")).to_have_text("Reply: partial, 1 host failed")


@BOTH_SIZES
@pytest.mark.parametrize(
    ("field", "label", "typed"),
    [("#timeout", "Timeout (s)", "0"), ("#host_list", "Hosts, one a line", "server 1")],
)
def test_an_error_focuses_its_field_and_is_said_and_tied_to_it(
    page: Page, field: str, label: str, typed: str
) -> None:
    page.locator(field).fill(typed)
    page.evaluate("scrollTo(0, document.documentElement.scrollHeight)")
    page.get_by_role("button", name="Run").click()
    error = page.locator(f"{field}-error")
    expect(error).not_to_be_empty()
    message = error.inner_text()
    expect(page.locator(field)).to_be_focused()
    expect(page.locator(field)).to_be_in_viewport()
    expect(page.locator(field)).to_have_accessible_description(message)
    expect(page.locator("#announce")).to_have_text(f"Not run: {label}: {message}")


def test_the_panels_and_print_inputs_are_labelled(page: Page) -> None:
    for label in ["Text for print_string", "Number for print_int"]:
        expect(page.locator("label", has_text=label)).to_be_visible()
        expect(page.get_by_label(label)).to_be_visible()
    expect(page.get_by_role("log", name="Output")).to_be_attached()
    expect(page.get_by_role("table", name="Each host's state")).to_be_visible()
    number = page.get_by_label("Number for print_int")
    number.fill("forty-two")
    page.get_by_role("button", name="print_int").click()
    expect(number).to_have_attribute("aria-invalid", "true")
    expect(number).to_have_accessible_description(page.locator("#number-error").inner_text())
    expect(page.locator("#announce")).to_contain_text("Not printed: ")
    number.fill("7")
    page.get_by_role("button", name="print_int").click()
    expect(number).not_to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("log", name="Output")).to_have_text("Python gave us number 7\n")


def accessibility_violations(page: Page) -> list[str]:
    """What axe-core finds against the page as it is now, one line a rule broken."""
    if page.evaluate("typeof axe") == "undefined":
        if not AXE.exists():
            pytest.fail(f"{AXE} is missing: run `just setup-browser`")
        page.add_script_tag(path=AXE)
    violations: list[str] = evaluate_within(
        page,
        """() => axe.run(document).then(({violations}) => violations.map((violation) =>
            `${violation.id}: ${violation.help} at ${violation.nodes.map((node) => node.target)}`))""",
        seconds=60,
    )
    return violations


@BOTH_SIZES
def test_axe_finds_no_accessibility_violations(page: Page) -> None:
    assert accessibility_violations(page) == []
    page.get_by_label("State of server1").select_option("down")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result-result")).to_have_text("partial")
    assert accessibility_violations(page) == []
    page.get_by_label("Timeout (s)").fill("0")
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_label("Timeout (s)")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Number for print_int").fill("1e3")
    page.get_by_role("button", name="print_int").click()
    expect(page.locator("#number-error")).not_to_be_empty()
    assert accessibility_violations(page) == []


@BOTH_SIZES
def test_presets_fill_the_form_and_reset_restores_it(page: Page) -> None:
    run = page.get_by_role("button", name="Run")
    message = page.locator("#result-message")
    for preset, said in [
        ("Tutorial: server1 down", "1 host failed"),
        ("A flaky host", "0 hosts failed"),
        ("1,000 hosts", "10 hosts failed"),
        ("3 hosts, all up", "0 hosts failed"),
    ]:
        page.get_by_role("button", name=preset).click()
        expect(page.locator("#result")).to_be_hidden()
        run.click()
        expect(message).to_have_text(said)
    page.get_by_role("button", name="1,000 hosts").click()
    expect(page.get_by_label("State of host0051")).to_have_value("flaky")
    page.get_by_role("button", name="Tutorial: server1 down").click()
    expect(page.get_by_label("State of server1")).to_have_value("down")
    page.get_by_label("Timeout (s)").fill("0")
    run.click()
    expect(page.get_by_label("Timeout (s)")).to_have_attribute("aria-invalid", "true")
    page.get_by_role("button", name="Reset").click()
    expect(page.get_by_label("Hosts, one a line")).to_have_value("server1\nserver2")
    expect(page.get_by_label("Timeout (s)")).to_have_value("10")
    expect(page.locator("[aria-invalid=true]")).to_have_count(0)
    expect(page.locator("#result")).to_be_hidden()
    for host in ["server1", "server2"]:
        expect(page.get_by_label(f"State of {host}")).to_have_value("up")
    expect(page.locator("#announce")).to_have_text("The form is reset")


@BOTH_SIZES
def test_the_reply_tells_the_modules_time_and_version_and_copies_its_json(page: Page) -> None:
    # The Rust core's version, as its Cargo.toml gives it and py_host reports it.
    expect(page.locator("#version")).to_have_text(f"Module rust_lib {CRATE_VERSION}")
    page.get_by_label("State of server2").select_option("down")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result-time")).to_have_text(re.compile(r"^\d+\.\d ms$"))
    raw = page.get_by_label("Raw JSON reply")
    expect(raw).to_be_hidden()
    page.get_by_text("Raw JSON reply").click()
    expect(raw).to_be_visible()
    reply = json.loads(raw.text_content() or "")
    assert reply["ok"]["failed_hosts"] == ["server2"]
    assert "\n" not in raw.text_content(), "compact"  # type: ignore[operator]
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied")
    assert json.loads(page.evaluate("navigator.clipboard.readText()")) == reply
    assert_nothing_runs_off_the_page(page)


@BOTH_SIZES
def test_the_tutorials_procedure_with_server1_down(page: Page, viewport: dict[str, int]) -> None:
    page.get_by_role("button", name="Tutorial: server1 down").click()
    expect(page.get_by_label("State of server1")).to_have_value("down")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#result-result")).to_have_text("partial")
    expect(page.locator("#result-message")).to_have_text("1 host failed")
    expect(page.locator("#result-dry-run")).to_have_text("no")
    rows = page.locator("#failures tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td")).to_have_text(["server1", "4", "host is down"])
    expect(page.locator("#raw")).to_contain_text('"failed_hosts":["server1"]')
    page.get_by_role("button", name="print_string").click()
    expect(page.locator("#output")).to_contain_text("Grüße 🦀")
    # The README's screenshots, as a reader would see the page.
    page.evaluate("document.activeElement.blur(); scrollTo(0, 0)")
    screenshot = SCREENSHOTS[f"{viewport['width']}x{viewport['height']}"]
    screenshot.parent.mkdir(exist_ok=True)
    # The module's time differs from run to run: hidden, the screenshots
    # change only when the page does.
    page.screenshot(path=screenshot, full_page=True, style="#result-time { visibility: hidden; }")


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


# Whole numbers as every number field takes them: an optional leading minus,
# then digits. Everything here breaks that rule.
NOT_WHOLE = ["0x10", "1e3", " 42 ", "+5", "4 2", "1.5", "forty-two", "\uff14\uff12", "-", ""]
TOO_LONG = "99999999999999999999"


@BOTH_SIZES
def test_print_int_takes_whole_numbers_only_and_quotes_what_was_typed(page: Page) -> None:
    number = page.get_by_label("Number for print_int")
    error = page.locator("#number-error")
    for typed, printed in [("-2147483648", "-2147483648"), ("007", "7")]:
        number.fill(typed)
        page.get_by_role("button", name="print_int").click()
        expect(page.locator("#output")).to_contain_text(f"Python gave us number {printed}\n")
        expect(error).to_be_empty()
    for typed in [*NOT_WHOLE, "2147483648", TOO_LONG]:
        number.fill(typed)
        page.get_by_role("button", name="print_int").click()
        expect(error).not_to_be_empty()
        assert typed in error.text_content(), "the error quotes the text as typed"  # type: ignore[operator]
        expect(number).to_have_attribute("aria-invalid", "true")
    assert "100000000000000000000" not in error.text_content()  # type: ignore[operator]
    expect(page.locator("#output")).to_have_text(
        "Python gave us number -2147483648\nPython gave us number 7\n"
    )


@BOTH_SIZES
def test_the_procedures_number_fields_follow_the_same_rule(page: Page) -> None:
    page.get_by_label("Job id").fill("007")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#raw")).to_contain_text('"job_id":7,')
    for field in ["Timeout (s)", "Job id"]:
        for typed in [*NOT_WHOLE, TOO_LONG]:
            page.get_by_label(field).fill(typed)
            page.get_by_role("button", name="Run").click()
            error = page.get_by_label(field).get_attribute("aria-describedby")
            expect(page.locator(f"#{error}")).not_to_be_empty()
            assert typed in page.locator(f"#{error}").text_content()  # type: ignore[operator]
            expect(page.locator("#result dl")).to_be_hidden()
        page.get_by_label(field).fill("1")


def test_wrong_types_get_error_replies_and_never_wear_the_module_out(page: Page) -> None:
    # Each call that threw through the module would leak one of wasm-bindgen's
    # 1,024 slots for JS values: 1,100 rounds of them would break it.
    answers = evaluate_within(
        page,
        """async input => {
            const {print_int, print_int_typed, print_string, resume_procedure, start_procedure} =
                window.demo.rust;
            const seen = new Set();
            const see = (reply) => seen.add(JSON.stringify(JSON.parse(reply).error ?? "ok"));
            for (let i = 0; i < 1100; i++) {
                see(start_procedure(123, true));
                see(start_procedure(new String(input), true));
                see(print_string({}));
                see(print_int("2"));
                see(print_int_typed(2));
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
