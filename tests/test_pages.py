"""The web pages through FastAPI's TestClient (no browser): status, roles, sessions, CSRF, writes, i18n.

Same small store and in-memory model as the API tests (``tests/api_helpers.py``), plus a stored score run as of
``AS_OF`` so the pages show that day.
"""

from __future__ import annotations

import re
import time
from html import unescape
from contextlib import contextmanager

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from models.collection import MAX_HORIZON
from ledger.engine import open_store
from ledger.reader import load_ledger
from models.scoring import build_scoring
from serving import i18n
from serving.app import create_app
from serving.keys import revoke_key
from serving.sessions import SESSION_COOKIE, read_session, sign_session
from api_helpers import AS_OF, FakeChampion, Loader, collector_of_first_client, start_site_store, synthetic

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
H1 = re.compile(r"<h1>\s*([^<]+?)\s*(?:<|$)", re.M)


class Site:
    """A TestClient per role, logged in through the login form."""

    def __init__(self, app, settings, keys, ledger, collector):
        self.app, self.settings, self.keys, self.ledger, self.collector = app, settings, keys, ledger, collector
        self.clients: dict[str, TestClient] = {}

    def anonymous(self) -> TestClient:
        tc = TestClient(self.app, follow_redirects=False)
        tc.__enter__()
        self._open.append(tc)
        return tc

    def as_(self, role: str) -> TestClient:
        if role not in self.clients:
            tc = self.anonymous()
            r = login(tc, self.keys[role])
            assert r.status_code == 303, r.text
            self.clients[role] = tc
        return self.clients[role]

    def engine(self):
        return open_store(self.settings.store_url)


def login(tc: TestClient, key: str, next_: str = ""):
    page = tc.get("/login")
    token = CSRF.search(page.text).group(1)
    return tc.post("/login", data={"key": key, "csrf": token, "next": next_})


def h1(html: str) -> str:
    return unescape(H1.search(html).group(1).strip())


@contextmanager
def running_site(home, loader=None):
    settings, keys, ledger, model, collector = start_site_store(home)
    app = create_app(settings, champion_loader=loader or Loader(FakeChampion(model)))
    site = Site(app, settings, keys, ledger, collector)
    site._open = []
    try:
        yield site
    finally:
        for tc in site._open:
            tc.__exit__(None, None, None)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A site shared by read-only tests."""
    with running_site(tmp_path_factory.mktemp("pages") / "home") as s:
        yield s


@pytest.fixture
def fresh_site(tmp_path):
    """A site of its own, for tests that write."""
    with running_site(tmp_path / "home") as s:
        yield s


# --- login and session -----------------------------------------------------------------------------


def test_anonymous_visitor_is_sent_to_login(site):
    tc = site.anonymous()
    for path in ("/worklist", "/clients/C00001", "/forecast", "/forecast.csv", "/kpis"):
        r = tc.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next=")
    assert tc.get("/").headers["location"] == "/login"
    page = tc.get("/login")
    assert page.status_code == 200 and h1(page.text) == "Log in"


def test_login_sets_a_strict_httponly_session_and_honours_next(site):
    tc = site.anonymous()
    r = login(tc, site.keys["treasurer"], next_="/kpis")
    assert r.status_code == 303 and r.headers["location"] == "/kpis"
    cookie = [c for c in r.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "=")][0]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert site.keys["treasurer"] not in cookie  # the session holds the key's id, never the key
    assert tc.get("/kpis").status_code == 200


def test_login_refuses_bad_keys_foreign_redirects_and_missing_csrf(site):
    tc = site.anonymous()
    r = login(tc, "enc_" + "x" * 43)
    assert r.status_code == 401 and "not valid" in r.text
    r = login(tc, site.keys["system"])
    assert r.status_code == 403 and "system key has no web pages" in r.text
    r = login(tc, site.keys["admin"], next_="//evil.example/")
    assert r.status_code == 303 and r.headers["location"] == "/worklist"
    other = site.anonymous()
    r = other.post("/login", data={"key": site.keys["admin"], "csrf": "forged"})
    assert r.status_code == 403 and SESSION_COOKIE not in r.headers.get("set-cookie", "")


def test_session_signature_and_expiry():
    value = sign_session("s3cret", {"kid": 1, "csrf": "abc", "iat": 1000})
    assert read_session("s3cret", value, now=1001) == {"kid": 1, "csrf": "abc", "iat": 1000}
    assert read_session("other", value, now=1001) is None
    body, mac = value.split(".")
    forged = sign_session("s3cret", {"kid": 2, "csrf": "abc", "iat": 1000}).split(".")[0] + "." + mac
    assert read_session("s3cret", forged, now=1001) is None
    assert read_session("s3cret", value, now=1000 + 13 * 3600) is None
    assert read_session("s3cret", "garbage", now=1001) is None


def test_revoked_key_ends_the_session(fresh_site):
    tc = fresh_site.as_("treasurer")
    assert tc.get("/kpis").status_code == 200
    engine = fresh_site.engine()
    revoke_key(engine, fresh_site.keys["treasurer"][:12])
    engine.dispose()
    assert tc.get("/kpis").status_code == 303


def test_logout_needs_the_form_token(fresh_site):
    tc = fresh_site.as_("admin")
    assert tc.post("/logout", data={"csrf": "wrong"}).status_code == 403
    token = CSRF.search(tc.get("/kpis").text).group(1)
    r = tc.post("/logout", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    tc.cookies.clear()
    assert tc.get("/kpis").status_code == 303


# --- pages and roles -------------------------------------------------------------------------------


@pytest.mark.parametrize("path, heading", [("/worklist", "Worklist"), ("/forecast", "Collection forecast"),
                                           ("/kpis", "Collection KPIs"), ("/uplift", "What each reminder changes")])
def test_admin_opens_every_page(site, path, heading):
    r = site.as_("admin").get(path)
    assert r.status_code == 200
    assert h1(r.text) == heading
    assert "As of 1 Jun 2025" in r.text  # the stored run's day
    assert "https://" not in r.text.replace("https://github.com/leeoniya/uPlot", "")  # nothing off-site


def test_worklist_rows_filters_and_sort(site):
    tc = site.as_("admin")
    stored = build_scoring(synthetic()[1], site.ledger, AS_OF).worklist
    today = stored[stored["priority"].notna()].sort_values("priority")
    html = tc.get("/worklist").text
    shown = re.findall(r'<tr data-invoice="([^"]+)"', html)
    assert shown == today["invoice_id"].tolist()
    assert 'id="stale-run"' not in html
    later = (pd.Timestamp(AS_OF) + pd.Timedelta(days=19)).date()
    assert "19 days before the day shown" in unescape(tc.get(f"/worklist?as_of={later}").text)
    everything = re.findall(r'<tr data-invoice="([^"]+)"', tc.get("/worklist?show=all").text)
    assert sorted(everything) == sorted(stored["invoice_id"])
    by_risk = re.findall(r'<tr data-invoice="([^"]+)"', tc.get("/worklist?show=all&sort=p_very_late&order=desc").text)
    risk = stored.set_index("invoice_id")["p_very_late"]
    assert list(risk.loc[by_risk]) == sorted(risk, reverse=True)
    profile = stored["profile"].iloc[0]
    only = re.findall(r'<tr data-invoice="([^"]+)"', tc.get(f"/worklist?show=all&profile={profile}").text)
    assert sorted(only) == sorted(stored.loc[stored["profile"] == profile, "invoice_id"])
    collector = site.collector
    mine = re.findall(r'data-client="([^"]+)"', tc.get(f"/worklist?show=all&collector={collector}").text)
    owners = site.ledger.clients.set_index("client_id")["collector"]
    assert mine and set(owners.loc[mine]) == {collector}


def test_collector_sees_own_portfolio_only(site):
    tc = site.as_("collector")
    owners = site.ledger.clients.set_index("client_id")["collector"]
    shown = set(re.findall(r'data-client="([^"]+)"', tc.get("/worklist?show=all").text))
    assert shown and set(owners.loc[list(shown)]) == {site.collector}
    # asking for another collector's rows gives none of them
    other = sorted(set(owners.dropna()) - {site.collector})[0]
    assert not re.findall(r'data-client="([^"]+)"', tc.get(f"/worklist?show=all&collector={other}").text)
    own = sorted(owners[owners == site.collector].index)[0]
    foreign = sorted(owners[owners != site.collector].index)[0]
    assert tc.get(f"/clients/{own}").status_code == 200
    r = tc.get(f"/clients/{foreign}")
    assert r.status_code == 403 and "collector" in r.text
    assert tc.get("/forecast").status_code == 403
    assert tc.get("/kpis").status_code == 403
    assert tc.get("/uplift").status_code == 403
    assert tc.get("/forecast.csv").status_code == 403


def test_treasurer_reads_but_does_not_write(site):
    tc = site.as_("treasurer")
    assert tc.get("/forecast").status_code == 200
    assert tc.get("/kpis").status_code == 200
    html = tc.get("/worklist").text
    assert "mark-done" not in html
    token = CSRF.search(html).group(1)
    invoice = re.findall(r'<tr data-invoice="([^"]+)"', html)[0]
    assert tc.post("/worklist/done", data={"csrf": token, "invoice_id": invoice}).status_code == 403


def test_client_page_shows_history_scores_and_actions(site):
    client, _ = collector_of_first_client(site.ledger)
    r = site.as_("admin").get(f"/clients/{client}")
    assert r.status_code == 200
    name = site.ledger.clients.set_index("client_id").loc[client, "name"]
    assert h1(r.text).startswith(name)
    inv = site.ledger.invoices
    paid = inv[(inv["client_id"] == client) & (inv["doc_type"] == "invoice") & (inv["paid_date"] < pd.Timestamp(AS_OF))]
    data = re.search(r'<script type="application/json" id="history-data">(.*?)</script>', r.text, re.S).group(1)
    import json

    history = json.loads(data)
    assert len(history["x"]) == len(history["y"]) == len(paid)
    assert sorted(history["y"]) == sorted((paid["paid_date"] - paid["due_date"]).dt.days.tolist())
    assert site.as_("admin").get("/clients/NOPE").status_code == 404


def test_forecast_csv(site):
    r = site.as_("admin").get("/forecast.csv?horizon=4&freq=W")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="encaisse-forecast-2025-06-01-4W.csv"' in r.headers["content-disposition"]
    lines = r.text.splitlines()
    assert lines[0] == "period_start,expected_amount,low,high,due_schedule_amount,not_yet_issued_amount"
    assert len(lines) == 5
    rows = [[float(v) for v in line.split(",")[1:4]] for line in lines[1:]]
    for expected, low, high in rows:
        assert 0 <= low <= high and expected >= 0
    # As_of is a Sunday: the first week holds that day alone, and the ledger clears nothing on Sundays.
    # (Its expectation can sit above a band of nought: a rare payment, not a likely one.)
    assert rows[0][0] < 0.05 * rows[1][0] and rows[1][1] <= rows[1][0] <= rows[1][2]


def test_forecast_page_takes_the_same_horizon_limit_as_the_api(site):
    tc = site.as_("admin")
    r = tc.get(f"/forecast.csv?horizon={MAX_HORIZON + 50}&freq=D")
    assert r.status_code == 200
    assert f"-{MAX_HORIZON}D.csv" in r.headers["content-disposition"] and len(r.text.splitlines()) == MAX_HORIZON + 1
    assert f'name="horizon" min="1" max="{MAX_HORIZON}"' in tc.get("/forecast").text


@pytest.mark.parametrize("path", ["/worklist", "/uplift", "/forecast", "/dunning/preview?client_id=C00001"])
def test_a_day_that_is_no_date_or_out_of_range_gives_a_422_page(site, path):
    tc = site.as_("admin")
    sep = "&" if "?" in path else "?"
    for given in ("2025-02-30", "0001-01-01", "9999-12-31", "01/02/2025", "2025-06-01T00:00", "2025-W14-2"):
        r = tc.get(f"{path}{sep}as_of={given}")
        assert r.status_code == 422, (path, given, r.status_code)
        assert f"as_of={given}" in unescape(r.text) and "2025-04-01" in r.text
    assert tc.get(f"{path}{sep}as_of={AS_OF}").status_code == 200


def test_no_model_gives_a_503_page_where_a_model_is_needed(tmp_path):
    loader = Loader(None)
    loader.fail = RuntimeError("registry unreachable")
    with running_site(tmp_path / "home", loader=loader) as s:
        tc = s.as_("admin")
        client, _ = collector_of_first_client(s.ledger)
        for path in ("/forecast", f"/clients/{client}", "/forecast.csv"):
            r = tc.get(path)
            assert r.status_code == 503 and "No model is loaded" in r.text, path
        assert tc.get("/worklist").status_code == 200  # the stored run needs no model
        assert tc.get("/kpis").status_code == 200  # KPIs come from the ledger alone


# --- writes ----------------------------------------------------------------------------------------


def test_mark_done_records_the_next_action_and_the_row_leaves(fresh_site):
    tc = fresh_site.as_("admin")
    html = tc.get("/worklist").text
    token = CSRF.search(html).group(1)
    rows = re.findall(r'<tr data-invoice="([^"]+)" data-client="([^"]+)">', html)
    invoice, client = rows[0]
    assert tc.post("/worklist/done", data={"csrf": "forged", "invoice_id": invoice}).status_code == 403
    r = tc.post("/worklist/done", data={"csrf": token, "invoice_id": invoice, "back": "show=today&sort=priority"})
    assert r.status_code == 303 and r.headers["location"] == f"/worklist?show=today&sort=priority&done={invoice}"
    after = re.findall(r'<tr data-invoice="([^"]+)"', tc.get("/worklist").text)
    assert invoice not in after and len(after) == len(rows) - 1
    engine = fresh_site.engine()
    actions = load_ledger(engine).actions
    engine.dispose()
    mine = actions[(actions["invoice_id"] == invoice) & (actions["action_date"] == pd.Timestamp(AS_OF))]
    stored = build_scoring(synthetic()[1], fresh_site.ledger, AS_OF).worklist.set_index("invoice_id")
    assert mine["step"].tolist() == [stored.loc[invoice, "next_action"]]
    assert mine["client_id"].tolist() == [client]
    # once done, the row has nothing left to mark
    assert tc.post("/worklist/done", data={"csrf": token, "invoice_id": invoice}).status_code == 409


def test_record_promise_call_and_dispute(fresh_site):
    tc = fresh_site.as_("admin")
    wl = tc.get("/worklist?show=all").text
    invoice, client = re.findall(r'<tr data-invoice="([^"]+)" data-client="([^"]+)">', wl)[0]
    page = tc.get(f"/clients/{client}").text
    token = CSRF.search(page).group(1)
    url = f"/clients/{client}/actions"
    bad = tc.post(url, data={"csrf": token, "kind": "promise", "invoice_id": invoice, "action_date": AS_OF})
    assert bad.status_code == 422 and "promised date" in bad.text
    r = tc.post(url, data={"csrf": token, "kind": "promise", "invoice_id": invoice, "action_date": AS_OF,
                           "promise_date": "2025-06-20", "promise_amount": "500"})
    assert r.status_code == 303 and r.headers["location"] == f"/clients/{client}?saved=1"
    r = tc.post(url, data={"csrf": token, "kind": "call", "action_date": AS_OF, "outcome": "no_answer"})
    assert r.status_code == 303
    r = tc.post(url, data={"csrf": token, "kind": "dispute", "invoice_id": invoice, "action_date": AS_OF})
    assert r.status_code == 303
    assert tc.post(url, data={"csrf": "nope", "kind": "call", "action_date": AS_OF}).status_code == 403
    assert tc.post(url, data={"csrf": token, "kind": "call", "action_date": "not a day"}).status_code == 422
    engine = fresh_site.engine()
    actions = load_ledger(engine).actions
    engine.dispose()
    new = actions[(actions["client_id"] == client) & (actions["action_date"] == pd.Timestamp(AS_OF))]
    got = sorted(zip(new["step"], new["outcome"], new["invoice_id"].fillna("")))
    assert got == sorted([("promise", "promise", invoice), ("call", "no_answer", ""), ("dispute", "dispute", invoice)])
    promise = new[new["step"] == "promise"].iloc[0]
    assert promise["promise_date"] == pd.Timestamp("2025-06-20") and promise["promise_amount"] == 500.0
    shown = tc.get(f"/clients/{client}?saved=1").text
    assert "Action recorded." in shown and "20 Jun 2025" in shown
    assert invoice not in re.findall(r'<tr data-invoice="([^"]+)"', tc.get("/worklist").text)


def test_collector_cannot_write_to_another_portfolio(fresh_site):
    tc = fresh_site.as_("collector")
    owners = fresh_site.ledger.clients.set_index("client_id")["collector"]
    own = sorted(owners[owners == fresh_site.collector].index)[0]
    foreign = sorted(owners[owners != fresh_site.collector].index)[0]
    token = CSRF.search(tc.get(f"/clients/{own}").text).group(1)
    r = tc.post(f"/clients/{foreign}/actions", data={"csrf": token, "kind": "call", "action_date": AS_OF})
    assert r.status_code == 403
    assert tc.post(f"/clients/{own}/actions", data={"csrf": token, "kind": "call", "action_date": AS_OF}).status_code == 303


# --- languages -------------------------------------------------------------------------------------


def test_french_pages_and_the_language_cookie(fresh_site):
    tc = fresh_site.as_("admin")
    r = tc.get("/worklist?lang=fr")
    assert r.status_code == 200 and h1(r.text) == "Liste de travail"
    assert '<html lang="fr">' in r.text and "Au 01/06/2025" in r.text
    assert re.search(r"\d\u202f€", r.text)  # French amounts: 1 234 €
    assert "encaisse_lang=fr" in r.headers["set-cookie"]
    assert h1(tc.get("/kpis").text) == "Indicateurs de recouvrement"  # the cookie keeps the choice
    assert h1(tc.get("/forecast").text) == "Prévision d'encaissements"
    assert h1(tc.get("/kpis?lang=en").text) == "Collection KPIs"
    assert h1(tc.get("/kpis").text) == "Collection KPIs"


def test_accept_language_picks_french_for_a_new_visitor(site):
    tc = site.anonymous()
    assert h1(tc.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}).text) == "Connexion"
    assert h1(tc.get("/login", headers={"Accept-Language": "de-DE"}).text) == "Log in"


def test_catalogue_languages_hold_the_same_keys_and_placeholders():
    en, fr = i18n.MESSAGES["en"], i18n.MESSAGES["fr"]
    assert set(en) == set(fr)
    field = re.compile(r"{(\w+)}")
    for key in en:
        assert set(field.findall(en[key])) == set(field.findall(fr[key])), key


def test_templates_use_only_catalogue_keys():
    from pathlib import Path

    used = set()
    for path in (Path(i18n.__file__).parents[1] / "templates").glob("*.html"):
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+)["']\s*[,)]""", path.read_text(encoding="utf-8")))
    assert used and used <= set(i18n.MESSAGES["en"]), used - set(i18n.MESSAGES["en"])


def test_number_and_date_formats():
    nb = "\u202f"
    assert i18n.fmt_amount(1234567.4, "en") == "€1,234,567"
    assert i18n.fmt_amount(1234567.4, "fr") == f"1{nb}234{nb}567{nb}€"
    assert i18n.fmt_amount(-12.5, "fr", "USD", digits=2) == f"-12,50{nb}$"
    assert i18n.fmt_amount(10, "en", "CHF") == "10 CHF"
    assert i18n.fmt_pct(0.125, "en", 1) == "12.5%" and i18n.fmt_pct(0.125, "fr", 1) == f"12,5{nb}%"
    assert i18n.fmt_date(pd.Timestamp("2025-12-31"), "en") == "31 Dec 2025"
    assert i18n.fmt_date("2025-12-31", "fr") == "31/12/2025"
    assert i18n.fmt_date(None, "fr") == i18n.fmt_amount(float("nan"), "en") == ""
    assert i18n.label("step", "formal_notice", "fr") == "Mise en demeure"
    assert i18n.label("step", "unknown_step", "fr") == "unknown_step"
    assert i18n.pick_lang(None, "", "fr-CA,en") == "fr" and i18n.pick_lang("de") == "en"


def test_session_cookie_is_not_reusable_after_its_max_age(site):
    tc = site.anonymous()
    tc.cookies.clear()
    secret = site.app.state.encaisse.session_secret
    fresh = sign_session(secret, {"kid": 1, "csrf": "x", "iat": int(time.time())})
    tc.cookies.set(SESSION_COOKIE, fresh)
    assert tc.get("/kpis").status_code == 200  # key 1 is the admin key: a signed cookie is a session
    old = sign_session(secret, {"kid": 1, "csrf": "x", "iat": int(time.time()) - 13 * 3600})
    tc.cookies.set(SESSION_COOKIE, old)
    assert tc.get("/kpis").status_code == 303


# --- monitoring pages ------------------------------------------------------------------------------


def test_monitoring_pages_show_forecast_vs_actual_and_model_health(site):
    from ledger.scores_store import latest_run

    engine = site.engine()
    run_id = latest_run(engine)["run_id"]
    engine.dispose()
    tc = site.as_("treasurer")
    r = tc.get("/monitoring/forecast?as_of=2025-07-31")
    assert r.status_code == 200 and h1(r.text) == "Forecast vs actual"
    assert f'data-run="{run_id}"' in r.text
    rows = re.findall(r"<td>(yes|no)</td></tr>", r.text)
    assert len(rows) == 9  # the weeks from Monday 2025-05-26 fully observed by 2025-07-31
    assert rows.count("yes") >= 5
    h = tc.get("/monitoring/health?as_of=2025-07-31")
    assert h.status_code == 200 and h1(h.text) == "Model health"
    assert f'data-run="{run_id}"' in h.text and 'id="drift-table"' in h.text
    assert re.search(r'<tr class="drift-(stable|moderate|major)"><td>c_', h.text)
    fr = tc.get("/monitoring/health?as_of=2025-07-31&lang=fr")
    assert h1(fr.text) == "Santé du modèle"
    # before the run's day nothing is judged yet
    assert 'id="no-runs"' in tc.get("/monitoring/forecast?as_of=2025-06-01").text


def test_monitoring_pages_follow_roles(site):
    assert site.as_("collector").get("/monitoring/forecast").status_code == 403
    assert site.as_("collector").get("/monitoring/health").status_code == 403
    r = site.anonymous().get("/monitoring/health")
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    nav = site.as_("treasurer").get("/forecast").text
    assert 'href="/monitoring/forecast"' in nav and 'href="/monitoring/health"' in nav
