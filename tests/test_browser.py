"""The web pages in a real browser: Playwright drives Debian's chromium against uvicorn on loopback.

The app runs on a small synthetic store with a stored score run (so the pages show that run's
day) and a model fitted in memory (``tests/api_helpers.synthetic``). The browser may load nothing
but the app: every other request is aborted and fails the test. Screenshots go to the test's tmp
dir. Without chromium the tests skip, except under ``CI=true`` where they fail
(``scripts/ensure_chromium.sh``, run by ``make test``, installs it).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from api_helpers import AS_OF, FakeChampion, Loader, start_site_store
from helpers import unavailable

CHROMIUM = os.environ.get("ENCAISSE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
START_TIMEOUT_S = 90.0
SITE: dict = {}
"""The running site's settings (its store), for tests that put rows there directly."""


def _need(ok: bool, reason: str) -> None:
    if not ok:
        unavailable(reason, "the browser tests must run; `scripts/ensure_chromium.sh` installs it")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app under uvicorn in a background thread; yields (base URL, keys, ledger)."""
    import uvicorn

    from serving.app import create_app

    home = tmp_path_factory.mktemp("browser") / "home"
    settings, keys, ledger, model, collector = start_site_store(home, roles=("admin", "collector", "treasurer"))
    SITE["settings"] = settings
    app = create_app(settings, champion_loader=Loader(FakeChampion(model)))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not srv.started:  # bounded: the thread ends (start-up failed) or the deadline passes
        if not thread.is_alive() or time.monotonic() > deadline:
            srv.should_exit = True
            pytest.fail(f"uvicorn did not start on 127.0.0.1:{port} within {START_TIMEOUT_S:.0f} s")
        thread.join(timeout=0.05)
    base = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{base}/health", timeout=5).json() == {"status": "ok"}
    try:
        yield base, keys, ledger, collector
    finally:
        srv.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "uvicorn did not shut down within 30 s"


@pytest.fixture(scope="module")
def browser():
    _need(Path(CHROMIUM).exists(), f"chromium not found at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - the test extra pins it
        _need(False, "playwright is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Watched:
    """A page whose console errors, page errors and off-site requests are collected."""

    def __init__(self, browser, base: str, shots: Path):
        self.base = base
        self.shots = shots
        self.context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True,
                                           locale="en-GB")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.offsite: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))

        def route(r):
            if r.request.url.startswith(base) or r.request.url.startswith("data:"):
                r.continue_()
            else:
                self.offsite.append(r.request.url)
                r.abort()

        self.context.route("**/*", route)

    def goto(self, path: str):
        response = self.page.goto(self.base + path)
        assert response is not None
        return response

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def login(self, key: str) -> None:
        self.goto("/login")
        self.page.fill("#key", key)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state("load")

    def check_clean(self) -> None:
        assert self.errors == [], self.errors
        assert self.offsite == [], f"the browser tried to load off-site resources: {self.offsite}"


@pytest.fixture
def shots(tmp_path_factory) -> Path:
    path = tmp_path_factory.getbasetemp() / "screenshots"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def watched(browser, server, shots):
    w = Watched(browser, server[0], shots)
    yield w
    w.context.close()


@pytest.fixture
def admin(watched, server):
    """The browser, logged in with the admin key."""
    watched.login(server[1]["admin"])
    return watched


def test_every_page_loads_without_console_errors(watched, server):
    _, keys, _, _ = server
    w = watched
    response = w.goto("/worklist")
    assert w.page.url.startswith(w.base + "/login"), "an anonymous visitor is sent to the login page"
    assert response.status == 200
    w.shot("login")
    w.login(keys["admin"])
    assert w.page.url.startswith(w.base + "/worklist")
    for path, heading, chart in (("/worklist", "Worklist", None), ("/forecast", "Collection forecast", "#fan-chart"),
                                 ("/kpis", "Collection KPIs", "#aging-chart")):
        response = w.goto(path)
        assert response.status == 200, path
        assert w.page.locator("h1").first.inner_text().strip() == heading
        if chart:
            w.page.wait_for_selector(f"{chart}[data-drawn=true] canvas", timeout=10_000)
        w.shot(path.strip("/"))
    rows = w.page.goto(w.base + "/worklist")
    assert rows.status == 200
    assert w.page.locator("#worklist tbody tr").count() > 0
    w.check_clean()


def test_click_through_worklist_client_promise_and_back(admin, server):
    from serving.pages import CLIENT_ACTION_ROWS

    _, _, ledger, _ = server
    w = admin
    # The client page shows its newest actions; the ledger runs past the pages' day, so a client with many
    # later actions would push a promise recorded on that day off the page: take the first row of another.
    rows = w.page.locator("#worklist tbody tr")
    day = pd.Timestamp(AS_OF)
    later = ledger.actions.loc[ledger.actions["action_date"] >= day, "client_id"].value_counts()
    first = next(rows.nth(i) for i in range(rows.count())
                 if later.get(rows.nth(i).get_attribute("data-client"), 0) < CLIENT_ACTION_ROWS)
    invoice = first.get_attribute("data-invoice")
    client = first.get_attribute("data-client")
    first.locator("a.client-link").click()
    w.page.wait_for_load_state("load")
    assert w.page.url.startswith(f"{w.base}/clients/{client}")
    name = ledger.clients.set_index("client_id").loc[client, "name"]
    assert name in w.page.locator("h1").inner_text()
    w.page.wait_for_selector("#history-chart[data-drawn=true] canvas", timeout=10_000)
    assert w.page.locator(f"#open-invoices tr[data-invoice='{invoice}']").count() == 1
    w.shot("client")

    form = w.page.locator("#record-action")
    form.locator("input[name=kind][value=promise]").check()
    form.locator("select[name=invoice_id]").select_option(invoice)
    form.locator("input[name=promise_date]").fill("2025-06-20")
    form.locator("input[name=promise_amount]").fill("500")
    form.locator("button[type=submit]").click()
    w.page.wait_for_load_state("load")
    assert "saved=1" in w.page.url
    assert w.page.locator("p.ok").inner_text().strip() == "Action recorded."
    table = w.page.locator("#actions").inner_text()
    assert "Promise to pay" in table and invoice in table and "20 Jun 2025" in table
    w.shot("client-after-promise")

    w.page.click("#back-to-worklist")
    w.page.wait_for_load_state("load")
    assert w.page.url.startswith(w.base + "/worklist")
    assert w.page.locator(f"#worklist tr[data-invoice='{invoice}']").count() == 0, "the promised row left the list"
    w.check_clean()


def test_mark_done_removes_the_row(admin):
    w = admin
    button = w.page.locator("#worklist tbody tr button.mark-done").first
    row = w.page.locator("#worklist tbody tr", has=w.page.locator("button.mark-done")).first
    invoice = row.get_attribute("data-invoice")
    before = w.page.locator("#worklist tbody tr").count()
    button.click()
    w.page.wait_for_load_state("load")
    assert f"done={invoice}" in w.page.url
    assert w.page.locator(f"#worklist tr[data-invoice='{invoice}']").count() == 0
    assert w.page.locator("#worklist tbody tr").count() == before - 1
    w.check_clean()


def test_french_labels_and_formats(admin):
    w = admin
    w.page.click("a[data-lang=fr]")
    w.page.wait_for_load_state("load")
    assert w.page.locator("html").get_attribute("lang") == "fr"
    assert w.page.locator("h1").first.inner_text().strip() == "Liste de travail"
    assert w.page.locator("header nav").inner_text().split() == ["Liste", "de", "travail", "Prévision", "Indicateurs",
                                                                 "Effet", "des", "relances", "Envois", "Prévu", "vs",
                                                                 "encaissé", "Santé", "du", "modèle"]
    assert "Au 01/06/2025" in w.page.locator(".head").inner_text()
    amounts = w.page.locator("#worklist tbody tr td.num:nth-child(4)").all_inner_texts()
    assert amounts and all(re.fullmatch(r"[\d\u202f]+\u202f€", a.strip()) for a in amounts), amounts[:5]
    w.shot("worklist-fr")
    w.goto("/kpis")  # the choice sticks (cookie) without ?lang=
    assert w.page.locator("h1").first.inner_text().strip() == "Indicateurs de recouvrement"
    w.page.wait_for_selector("#aging-chart[data-drawn=true] canvas", timeout=10_000)
    w.shot("kpis-fr")
    w.check_clean()


def test_forecast_csv_download(watched, server):
    _, keys, _, _ = server
    w = watched
    w.login(keys["treasurer"])
    assert w.page.url.startswith(w.base + "/worklist")  # a treasurer may read the worklist (serving.auth)
    w.goto("/forecast")
    w.page.wait_for_selector("#fan-chart[data-drawn=true] canvas", timeout=10_000)
    rows = w.page.locator("#forecast-table tbody tr").count()
    with w.page.expect_download() as info:
        w.page.click("#csv-download")
    download = info.value
    assert download.suggested_filename == "encaisse-forecast-2025-06-01-13W.csv"
    lines = Path(download.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "period_start,expected_amount,low,high,due_schedule_amount,not_yet_issued_amount"
    assert len(lines) == rows + 1 == 14
    first = lines[1].split(",")
    assert first[0] == "2025-05-26"  # weeks start on Monday: the week holding as_of 2025-06-01
    low, high, expected = float(first[2]), float(first[3]), float(first[1])
    # That week holds as_of, a Sunday, alone: the ledger clears nothing on Sundays (models.forecast).
    assert 0 <= low <= high and 0 <= expected < 0.05 * float(lines[2].split(",")[1])
    w.check_clean()


def test_collector_sees_own_portfolio_only(watched, server):
    _, keys, ledger, collector = server
    w = watched
    w.login(keys["collector"])
    w.goto("/worklist?show=all")
    shown = set(w.page.locator("#worklist tbody tr").evaluate_all("rs => rs.map(r => r.dataset.client)"))
    portfolio = set(ledger.clients.loc[ledger.clients["collector"] == collector, "client_id"])
    assert shown and shown <= portfolio
    other = sorted(set(ledger.clients["client_id"]) - portfolio)[0]
    assert w.goto(f"/clients/{other}").status == 403
    assert w.goto("/forecast").status == 403
    assert [a.strip() for a in w.page.locator("header nav a").all_inner_texts()] == ["Worklist", "Outbox"]
    # A 403 page is an expected "Failed to load resource" console message; nothing else may be.
    w.errors = [e for e in w.errors if "403" not in e]
    w.check_clean()


def test_preview_and_send_from_the_worklist_then_read_it_in_the_outbox(admin, server):
    _, _, ledger, _ = server
    w = admin
    row = w.page.locator("#worklist tbody tr", has=w.page.locator("a.preview")).first
    client = row.get_attribute("data-client")
    row.locator("a.preview").click()
    w.page.wait_for_load_state("load")
    assert w.page.url.startswith(f"{w.base}/dunning/preview?client_id={client}")
    card = w.page.locator("section.message-preview").first
    step = card.get_attribute("data-step")
    channel = card.get_attribute("data-channel")
    subject = card.locator(".subject").inner_text().strip()
    text = card.locator("pre.message-text").inner_text()
    assert subject and text.strip()
    assert "nan" not in card.inner_text().lower().split()
    if channel != "call_task":  # a message lists the client's invoices at that step
        invoices = card.locator("p.muted.small").first.inner_text()
        assert any(i in text or i in invoices for i in ledger.invoices.loc[ledger.invoices["client_id"] == client,
                                                                             "invoice_id"])
    w.shot("dunning-preview")
    card.locator("button.send").click()
    w.page.wait_for_load_state("load")
    assert w.page.url.startswith(f"{w.base}/outbox?client_id={client}")
    assert w.page.locator("#send-result").inner_text().startswith("1 message(s) sent or recorded, 0 failed")
    sent = w.page.locator("#outbox tbody tr").first
    assert sent.get_attribute("data-status") in ("sent", "task")
    w.shot("outbox")
    sent.locator("a.read").click()
    w.page.wait_for_load_state("load")
    assert w.page.locator("h1").inner_text().strip() == subject
    assert w.page.locator("#message-body").inner_text().strip() == text.strip()
    # sending again: nothing is due any more for that step
    w.goto(f"/dunning/preview?client_id={client}&step={step}")
    assert w.page.locator("section.message-preview").count() == 0
    assert w.page.locator("#nothing-due").count() == 1
    w.check_clean()


def test_outbox_shows_a_failed_message_and_a_collector_sees_own_portfolio_only(watched, server):
    from ledger import outbox
    from ledger.engine import open_store

    _, keys, ledger, collector = server
    portfolio = set(ledger.clients.loc[ledger.clients["collector"] == collector, "client_id"])
    other = sorted(set(ledger.clients["client_id"]) - portfolio)[0]
    engine = open_store(SITE["settings"].store_url)
    outbox.save_planned(engine, [{"message_id": "f" * 32, "as_of": pd.Timestamp("2025-06-01").date(),
                                  "client_id": other, "step": "reminder_1", "channel": "email",
                                  "template": "reminder_courteous", "recipient": "ap@example.com"}],
                        {"f" * 32: [ledger.invoices.loc[ledger.invoices["client_id"] == other, "invoice_id"].iloc[0]]})
    outbox.mark_failed(engine, "f" * 32, "SMTP 127.0.0.1:2525: 550 mailbox unavailable")
    engine.dispose()
    w = watched
    w.login(keys["admin"])
    w.goto("/outbox")
    w.page.select_option("select[name=status]", "failed")
    w.page.click("form.filters button[type=submit]")
    w.page.wait_for_load_state("load")
    assert "status=failed" in w.page.url
    rows = w.page.locator("#outbox tbody tr")
    assert rows.count() >= 1
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.status)")) == {"failed"}
    w.page.locator(f"#outbox tr[data-message='{'f' * 32}'] a.read").click()
    w.page.wait_for_load_state("load")
    assert "550 mailbox unavailable" in w.page.locator("#message-facts").inner_text()
    assert w.page.locator("#message-status").inner_text().strip() == "Failed"
    w.context.clear_cookies()
    w.login(keys["collector"])
    w.goto("/outbox")
    shown = set(w.page.locator("#outbox tbody tr").evaluate_all("rs => rs.map(r => r.dataset.client)"))
    assert other not in shown and shown <= portfolio
    assert w.goto(f"/outbox/{'f' * 32}").status == 403
    w.errors = [e for e in w.errors if "403" not in e]
def test_monitoring_pages_draw_forecast_vs_actual_and_model_health(watched, server):
    _, keys, _, _ = server
    w = watched
    w.login(keys["treasurer"])
    response = w.goto("/monitoring/forecast?as_of=2025-07-31")
    assert response.status == 200
    assert w.page.locator("h1").first.inner_text().strip() == "Forecast vs actual"
    w.page.wait_for_selector("#fva-chart-1[data-drawn=true] canvas", timeout=10_000)
    assert w.page.locator(".fva-table tbody tr").count() == 9
    w.shot("forecast_vs_actual")
    w.page.click("nav a[href='/monitoring/health']")
    w.page.wait_for_load_state("load")
    assert w.page.locator("h1").first.inner_text().strip() == "Model health"
    assert w.page.locator("#health-table tbody tr[data-run]").count() == 1
    assert w.page.locator("#drift-table tbody tr").count() > 10
    w.shot("model_health")
    w.check_clean()


def test_uplift_page_draws_each_step_s_estimate_by_month(watched, server):
    from ledger.engine import open_store
    from ledger.staged_upsert import upsert_frame
    base, keys, ledger, _ = server
    # Every other client's preventive and reminder_1 decisions become held-back controls, so both arms
    # hold decisions. Last test to load pages: the store changes for the rest of the module.
    acts = ledger.actions
    controls = set(sorted(acts["client_id"].unique())[::2])
    held = acts[acts["step"].isin(["preventive", "reminder_1"]) & acts["client_id"].isin(controls)]
    engine = open_store(SITE["settings"].store_url)
    with engine.begin() as conn:
        upsert_frame(conn, "actions", held.assign(outcome="held_back"))
    engine.dispose()
    auth = {"Authorization": f"Bearer {keys['admin']}"}
    assert httpx.post(f"{base}/v1/admin/reload", headers=auth, timeout=60).status_code == 200
    want = httpx.get(f"{base}/v1/uplift?as_of={AS_OF}", headers=auth, timeout=60).json()  # the pages' day
    w = watched
    w.login(keys["admin"])
    assert w.goto("/uplift").status == 200
    assert w.page.locator("h1").first.inner_text().strip() == "What each reminder changes"
    for step in ("preventive", "reminder_1", "reminder_2"):
        w.page.wait_for_selector(f"#uplift-chart-{step}[data-drawn=true] canvas", timeout=10_000)
    data = w.page.evaluate("JSON.parse(document.getElementById('uplift-data-reminder_1').textContent)")
    # One point per month of history, then the page's day; the last one is the estimate the table shows.
    assert len(data["x"]) == len(want["history"]) + 1
    now = want["steps"]["reminder_1"]["window_days"][str(want["worklist_window_days"])]
    assert now["n_control"] > 0
    assert data["uplift"][-1] == pytest.approx(100 * now["uplift"], abs=0.01)
    assert data["low"][-1] <= data["uplift"][-1] <= data["high"][-1]
    assert w.page.locator("#uplift-profiles").get_attribute("data-basis") == want["profile_basis"]
    w.shot("uplift")
    w.check_clean()


def test_screenshots_were_written(browser, shots):
    names = {p.name for p in shots.glob("*.png")}
    assert {"login.png", "worklist.png", "forecast.png", "kpis.png", "client.png", "worklist-fr.png",
            "dunning-preview.png", "outbox.png",
            "forecast_vs_actual.png", "model_health.png", "uplift.png"} <= names
    assert all(p.stat().st_size > 10_000 for p in shots.glob("*.png"))
