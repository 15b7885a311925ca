"""The supervisor console's locks, tried for real: the server's own app (``create_app``) over
HTTP (TestClient), a real SQLite store, real Argon2 hashes and signed cookies; the console's
queries on SQLite and on PostgreSQL.

Every console route is enumerated from ``app.routes``, so a route added later is covered by the
anonymous and role checks without anyone remembering to list it.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select
from typer.testing import CliRunner

from tests.test_console_browser import (
    PASSWORD,
    _set_call,
    _turn,
    console_settings,
    seed_calls,
)
from voice_agent.console.auth import (
    SESSION_COOKIE,
    LoginThrottle,
    SessionCodec,
    load_secret_key,
    throttle_keys,
)
from voice_agent.console.cli import users_app
from voice_agent.console.masking import mask_url
from voice_agent.console.queries import CallFilter, ConsoleQueries, QueryError, to_csv, to_json
from voice_agent.console.users import UserError, UserStore
from voice_agent.server import create_app
from voice_agent.speech.audio import write_wav
from voice_agent.storage import CallStore, User

LOOPBACK = ("127.0.0.1", 50000)
PUBLIC = {
    ("GET", "/console/login"),
    ("POST", "/console/login"),
    ("GET", "/console/static/{name}"),
}
ADMIN_PREFIXES = ("/console/users", "/console/settings")


def _walk(routes):
    """Every route, also inside included routers (newer FastAPI wraps them, unflattened)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _walk(inner.routes)
        else:
            yield route


class Console:
    """The real server app (models are not loaded: the console does not need them)."""

    def __init__(self, tmp_path, **overrides) -> None:
        self.settings = console_settings(tmp_path, **overrides)
        self.app = create_app(self.settings)
        self.store = CallStore.from_settings(self.settings)
        self.app.state.store = self.store  # what the lifespan does at start-up
        self.users = UserStore(self.store.engine)
        self.users.add("ada", PASSWORD, "admin")
        self.users.add("sam", PASSWORD, "supervisor")
        self.seeded = seed_calls(self.store)

    def client(self, client=LOOPBACK, base_url="http://127.0.0.1") -> TestClient:
        return TestClient(self.app, base_url=base_url, client=client)

    def routes(self) -> list[tuple[str, str]]:
        out = []
        for route in _walk(self.app.routes):
            if isinstance(route, APIRoute) and route.path.startswith("/console"):
                out += [(m, route.path) for m in sorted(route.methods - {"HEAD"})]
        return out

    def url(self, path: str) -> str:
        return (
            path.replace("{call_id}", self.seeded.vpn)
            .replace("{username}", "sam")
            .replace("{name}", "console.css")
        )


@pytest.fixture
def console(tmp_path) -> Console:
    return Console(tmp_path)


def login_form_token(client: TestClient) -> str:
    page = client.get("/console/login")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def login(client: TestClient, username: str, password: str = PASSWORD, next_url: str = ""):
    token = login_form_token(client)
    return client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": token, "next": next_url},
        follow_redirects=False,
    )


def signed_in(console: Console, username: str) -> tuple[TestClient, str]:
    client = console.client()
    assert login(client, username).status_code == 303
    return client, client.get("/console/api/me").json()["csrf_token"]


def request(client: TestClient, method: str, url: str, **kw):
    return client.request(method, url, follow_redirects=False, **kw)


# -- every route, anonymous and by role ------------------------------------------------------------


def test_every_console_page_and_api_rejects_an_anonymous_request(console):
    routes = console.routes()
    assert len(routes) >= 18 and PUBLIC <= set(routes)  # the enumeration found the console
    anonymous = console.client()
    forged = console.client()
    forged.cookies.set(
        SESSION_COOKIE,
        URLSafeTimedSerializer(b"not the server's key", salt="console-session").dumps(
            {"u": 1, "v": 1, "i": time.time(), "s": "x"}
        ),
        path="/console",
    )
    checked = 0
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        for client in (anonymous, forged):
            r = request(client, method, console.url(path), data={"username": "x", "role": "admin"})
            if path.startswith("/console/api"):
                assert r.status_code == 401, (method, path, r.status_code)
            else:
                assert r.status_code == 303, (method, path, r.status_code)
                assert r.headers["location"].startswith("/console/login"), (method, path)
            assert "VPN" not in r.text and "Dana" not in r.text, (method, path)
            assert r.headers["x-frame-options"] == "DENY"
            checked += 1
    assert checked >= 2 * 15
    assert console.users.by_name("x") is None


def test_the_public_routes_give_nothing_away(console):
    client = console.client()
    page = client.get("/console/login")
    assert page.status_code == 200 and "VPN" not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "https://" not in page.text  # no CDN, no external fonts
    css = client.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/console/static/..%2Fusers.py").status_code == 404
    # a login form posted without its CSRF token is refused, even with the right password
    r = client.post(
        "/console/login",
        data={"username": "ada", "password": PASSWORD},
        follow_redirects=False,
    )
    assert r.status_code == 403 and f"{SESSION_COOKIE}=" not in r.headers.get("set-cookie", "")


def test_a_supervisor_cannot_reach_admin_actions(console):
    client, token = signed_in(console, "sam")
    admin_routes = [(m, p) for m, p in console.routes() if p.startswith(ADMIN_PREFIXES)]
    assert len(admin_routes) >= 6
    for method, path in admin_routes:
        r = request(
            client,
            method,
            console.url(path),
            data={
                "csrf_token": token,
                "username": "mallory",
                "role": "admin",
                "password": "x" * 12,
            },
        )
        assert r.status_code == 403, (method, path, r.status_code)
    assert console.users.by_name("mallory") is None
    assert console.users.by_name("sam").role == "supervisor"
    assert not console.users.by_name("sam").disabled
    # ... while every page and API meant for supervisors answers
    for method, path in console.routes():
        if method == "GET" and (method, path) not in PUBLIC and not path.startswith(ADMIN_PREFIXES):
            r = request(client, method, console.url(path))
            assert r.status_code in (200, 303, 404), (path, r.status_code)
            if path.endswith("/audio"):
                assert r.status_code == 404  # this call was not recorded
            elif path != "/console":
                assert r.status_code == 200, (path, r.status_code)
    page = client.get("/console/calls")
    assert "/console/users" not in page.text  # the menu does not offer admin pages
    admin, _ = signed_in(console, "ada")
    for method, path in admin_routes:
        if method == "GET":
            assert request(admin, method, console.url(path)).status_code == 200


def test_a_forged_form_without_its_csrf_token_fails(console):
    admin, token = signed_in(console, "ada")
    _, other_token = signed_in(console, "sam")
    form = {"username": "eve", "role": "admin", "password": "long enough password"}
    for bad in ({}, {"csrf_token": "0" * 64}, {"csrf_token": other_token}):
        r = request(admin, "POST", "/console/users", data={**form, **bad})
        assert r.status_code == 403 and "CSRF" in r.text
        assert console.users.by_name("eve") is None
    assert request(admin, "POST", "/console/users/sam/disable").status_code == 403
    assert not console.users.by_name("sam").disabled
    assert request(admin, "POST", "/console/logout").status_code == 403
    assert admin.get("/console/api/me").status_code == 200  # still signed in
    # with the token (form field) it works
    r = request(admin, "POST", "/console/users", data={**form, "csrf_token": token})
    assert r.status_code == 303 and console.users.by_name("eve").role == "admin"
    # API-style: the token in the header; logout ends the session even for a replayed cookie
    old_cookie = admin.cookies.get(SESSION_COOKIE)
    r = request(admin, "POST", "/console/logout", headers={"X-CSRF-Token": token})
    assert r.status_code == 303
    replay = console.client()
    replay.cookies.set(SESSION_COOKIE, old_cookie, path="/console")
    assert replay.get("/console/api/me").status_code == 401


def test_five_wrong_passwords_slow_the_next_attempt_down(console):
    client = console.client()
    for _ in range(5):
        r = login(client, "ada", "wrong password!")
        assert r.status_code == 401 and "Wrong username or password" in r.text
    r = login(client, "ada")  # the right password, too soon
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    wait = int(r.headers["retry-after"])
    assert f"{SESSION_COOKIE}=" not in r.headers.get("set-cookie", "")
    assert login(client, "sam").status_code == 429  # same address, another user (spraying)
    # the same user from another address (over https, where Secure cookies travel): the guesses
    # were not theirs, so they are not slowed down; the guessing address still is
    elsewhere = console.client(client=("10.1.2.3", 40000), base_url="https://console.example.com")
    r = login(elsewhere, "ada")
    assert r.status_code == 303 and f"{SESSION_COOKIE}=" in r.headers.get("set-cookie", "")
    assert login(client, "ada").status_code == 429
    time.sleep(wait)  # a delay, not a lock-out: after it, the right password works
    assert login(client, "ada").status_code == 303


def test_the_login_delay_grows_exponentially_and_is_forgotten():
    now = [1000.0]
    throttle = LoginThrottle(clock=lambda: now[0], max_delay=60, window=900)
    keys = throttle_keys("ada", "1.2.3.4")
    assert all("1.2.3.4" in key for key in keys)  # never the username alone
    for _ in range(5):  # each attempt is counted when it is let through, before its password
        assert throttle.reserve(keys) == 0
    waits = []
    for _ in range(8):
        wait = throttle.reserve(keys)
        assert wait > 0 and throttle.reserve(keys) == wait  # a refused attempt is not counted
        waits.append(wait)
        now[0] += wait
        assert throttle.reserve(keys) == 0
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]
    assert throttle.retry_after(throttle_keys("bob", "1.2.3.4")) == 60  # spraying: same address
    assert throttle.retry_after(throttle_keys("ada", "5.6.7.8")) == 0  # the real user elsewhere
    now[0] += 901  # a quiet quarter of an hour: forgotten
    assert throttle.retry_after(keys) == 0
    # success: the (address, user) count is cleared, the address gets its one attempt back
    bob = throttle_keys("bob", "1.2.3.4")
    for _ in range(4):
        assert throttle.reserve(bob) == 0
    assert throttle.reserve(keys) == 0  # five attempts from the address now
    assert throttle.retry_after(keys) == 1
    pair, address = keys
    throttle.succeeded(clear=[pair], refund=[address])
    assert throttle.retry_after(keys) == 0 and throttle.retry_after(bob) == 0
    assert throttle.reserve(bob) == 0 and throttle.reserve(keys) == 1  # bob's guesses still count
    # an IPv6 client is its /64; an IPv4-mapped address is the IPv4 address
    assert throttle_keys("ada", "2001:db8::1") == throttle_keys("ADA ", "2001:db8::ffff:1")
    assert throttle_keys("ada", "2001:db8:0:1::1") != throttle_keys("ada", "2001:db8::1")
    assert throttle_keys("ada", "::ffff:1.2.3.4") == keys


@pytest.mark.password_cost
def test_unknown_users_cost_a_password_hash_too(console):
    def timed(name: str) -> float:
        started = time.perf_counter()
        assert console.users.authenticate(name, "wrong password!") is None
        return time.perf_counter() - started

    timed("nobody")  # the dummy hash is made on first use
    known = min(timed("ada") for _ in range(3))
    unknown = min(timed("nobody") for _ in range(3))
    assert unknown > 0.3 * known, (known, unknown)
    row_hash = (
        console.users.engine.connect()
        .execute(select(User.password_hash).where(User.username == "ada"))
        .scalar_one()
    )
    assert row_hash.startswith("$argon2id$") and "m=65536" in row_hash  # memory-hard: 64 MiB
    assert PASSWORD not in row_hash


# -- sessions ------------------------------------------------------------------------------------


def test_session_cookies_are_httponly_strict_and_secure_off_loopback(tmp_path):
    console = Console(tmp_path)
    r = login(console.client(), "ada")
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie.split(SESSION_COOKIE)[1].split(",")[0]  # plain http, loopback
    r = login(console.client(base_url="https://console.example.com"), "ada")
    assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
    lan = console.client(client=("192.168.1.20", 40000), base_url="http://192.168.1.5:8000")
    assert "Secure" in lan.get("/console/login").headers["set-cookie"]
    always = Console(tmp_path / "always", console_secure_cookies="always")
    assert "Secure" in always.client().get("/console/login").headers["set-cookie"]


def signed_ago(key: bytes, secs: int) -> URLSafeTimedSerializer:
    """A session serializer whose signatures look ``secs`` old (the cookie was last used then)."""

    class Signer(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - secs

    return URLSafeTimedSerializer(key, salt="console-session", signer=Signer)


def test_sessions_expire_when_idle_or_too_old_and_refresh_while_used(tmp_path):
    console = Console(tmp_path, console_session_hours=1, console_idle_minutes=30)
    ada = console.users.by_name("ada")
    key = load_secret_key(console.settings)

    def me(cookie: str):
        client = console.client()
        client.cookies.set(SESSION_COOKIE, cookie, path="/console")
        return client.get("/console/api/me")

    fresh = SessionCodec(key, session_hours=1, idle_minutes=30)
    assert me(fresh.issue(ada)).status_code == 200
    idle = SessionCodec(key, session_hours=1, idle_minutes=30)
    idle._sessions = signed_ago(key, 2 * 3600)
    assert me(idle.issue(ada)).status_code == 401  # last used two hours ago
    too_old = SessionCodec(key, session_hours=1, idle_minutes=30, clock=lambda: time.time() - 7200)
    assert me(too_old.issue(ada)).status_code == 401  # began two hours ago, used just now
    recent = SessionCodec(key, session_hours=1, idle_minutes=30)
    recent._sessions = signed_ago(key, 120)
    r = me(recent.issue(ada))
    assert r.status_code == 200 and f"{SESSION_COOKIE}=" in r.headers["set-cookie"]  # idle reset


def test_disabling_a_user_or_changing_their_password_ends_their_sessions(console):
    client, _ = signed_in(console, "sam")
    console.users.set_password("sam", "a brand new password")
    assert client.get("/console/api/me").status_code == 401
    assert login(console.client(), "sam").status_code == 401  # the old password is gone
    client = console.client()
    assert login(client, "sam", "a brand new password").status_code == 303
    console.users.set_disabled("sam", True)
    assert client.get("/console/api/me").status_code == 401
    assert login(console.client(), "sam", "a brand new password").status_code == 401
    admin, token = signed_in(console, "ada")
    r = request(admin, "POST", "/console/users/ada/disable", data={"csrf_token": token})
    assert r.status_code == 400 and not console.users.by_name("ada").disabled  # not yourself


def test_login_only_redirects_inside_the_console(console):
    for target, expected in (
        ("//evil.example/x", "/console/calls"),
        ("https://evil.example/", "/console/calls"),
        ("/console/live", "/console/live"),
    ):
        r = login(console.client(), "sam", next_url=target)
        assert r.status_code == 303 and r.headers["location"] == expected


def test_the_secret_key_is_made_once_and_private(tmp_path):
    settings = console_settings(tmp_path)
    first = load_secret_key(settings)
    path = tmp_path / "console_secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret_key(settings) == first and len(first) >= 32
    configured = console_settings(tmp_path, console_secret_key="x" * 40)
    assert load_secret_key(configured) == b"x" * 40
    with pytest.raises(ValueError, match="too short"):
        load_secret_key(console_settings(tmp_path, console_secret_key="short"))


def test_servers_starting_at_once_on_one_folder_share_one_key(tmp_path):
    settings = console_settings(tmp_path)
    gate = threading.Barrier(8)

    def load() -> bytes:
        gate.wait()
        return load_secret_key(settings)

    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: load(), range(8)))
    assert len(keys) == 1 and len(keys.pop()) >= 32
    assert [p.name for p in tmp_path.iterdir() if "secret" in p.name] == ["console_secret.key"]


# -- what pages show ------------------------------------------------------------------------------


def test_transcripts_are_escaped_and_recordings_need_a_session(console):
    call_id = console.store.start_call("webrtc")
    console.store.add_turn(
        call_id,
        _turn(1, "reply", '<script>alert("x")</script><img src=x onerror=alert(2)>', "ok", 0, {}),
    )
    client, _ = signed_in(console, "sam")
    page = client.get(f"/console/calls/{call_id}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "&lt;script&gt;alert" in page.text
    assert "<img src=x" not in page.text
    wav = console.settings.data_dir / "recordings" / f"{call_id}.wav"
    wav.parent.mkdir()
    write_wav(wav, b"\x00\x00" * 1600, 16000)
    page = client.get(f"/console/calls/{call_id}")
    assert f'src="/console/calls/{call_id}/audio"' in page.text
    audio = client.get(f"/console/calls/{call_id}/audio")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert audio.content[:4] == b"RIFF"
    anonymous = console.client().get(f"/console/calls/{call_id}/audio", follow_redirects=False)
    assert anonymous.status_code == 303
    assert client.get("/console/calls/..%2F..%2Fetc%2Fpasswd/audio").status_code == 404


def test_settings_page_masks_secrets(tmp_path):
    console = Console(
        tmp_path,
        twilio_auth_token="tw-token-123456",
        llm_api_key="sk-live-abcdef",
        console_secret_key="k" * 40,
        llm_base_url="http://gpu:8080/v1?api_key=sk-SECRET&model=qwen",
        kb_qdrant_url="http://qdrant:6333/?api-key=QSECRET",
        servicenow_instance_url="https://acme.service-now.com/?sysparm_token=SNTOKEN#sig=SNSIG",
        public_url="https://voice.example.com/?AccessToken=PUBTOKEN",
        ice_servers=["stun:stun.example:3478", "turn:demo:TURNSECRET@turn.example:3478"],
    )
    # and a database URL with a password: an app over these settings, on the SQLite store
    console.app = create_app(
        console.settings.model_copy(
            update={"database_url": "postgresql+psycopg://u:PGSECRET@db/x?password=PGPARAM"}
        )
    )
    console.app.state.store = console.store
    admin, _ = signed_in(console, "ada")
    r = admin.get("/console/settings")
    assert r.status_code == 200
    page = html.unescape(r.text)
    for secret in (
        "tw-token-123456",
        "sk-live-abcdef",
        "k" * 40,
        "sk-SECRET",
        "QSECRET",
        "SNTOKEN",
        "SNSIG",
        "PUBTOKEN",
        "TURNSECRET",
        "PGSECRET",
        "PGPARAM",
    ):
        assert secret not in page, secret
    assert "twilio_auth_token" in page and "••••••" in page and "company_name" in page
    # what is not secret stays readable
    for shown in (
        "http://gpu:8080/v1?api_key=***&model=qwen",
        "http://qdrant:6333/?api-key=***",
        "https://acme.service-now.com/?sysparm_token=***#sig=***",
        "stun:stun.example:3478, turn:demo:***@turn.example:3478",
        "postgresql+psycopg://u:***@db/x?password=***",
    ):
        assert shown in page, shown


def test_mask_url():
    assert mask_url("http://gpu:8080/v1?api_key=sk-1&x=2") == "http://gpu:8080/v1?api_key=***&x=2"
    assert mask_url("http://h/?Api-Key=1;SIGNATURE=2&pwd=3&credentials=4&passphrase=5") == (
        "http://h/?Api-Key=***;SIGNATURE=***&pwd=***&credentials=***&passphrase=***"
    )
    assert mask_url("postgresql://u:p@ss:w@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert mask_url("turn:user:pass@host:3478?transport=tcp") == (
        "turn:user:***@host:3478?transport=tcp"
    )
    assert (
        mask_url("https://h/cb#access_token=T&state=s") == "https://h/cb#access_token=***&state=s"
    )
    for clear in ("stun:stun.example:3478", "sqlite:////tmp/calls.db", "http://u@h/x", "plain"):
        assert mask_url(clear) == clear


# -- queries on SQLite and PostgreSQL -----------------------------------------------------------


def test_filters_search_sort_and_export_on_sqlite_and_postgresql(any_database_url):
    store = CallStore(any_database_url)
    seeded = seed_calls(store)
    queries = ConsoleQueries(store.engine)

    def ids(**params) -> list[str]:
        return [r["id"] for r in queries.list_calls(CallFilter.parse(params)).rows]

    assert len(ids()) == len(seeded.all) == 8
    assert sorted(ids(outcome="ticket")) == sorted(seeded.by_outcome["ticket"])
    assert sorted(ids(outcome="transferred")) == sorted(seeded.by_outcome["transferred"])
    assert ids(category="network", transport="twilio", priority="P2") == [seeded.vpn]
    assert len(ids(transport="webrtc")) == 2
    today = datetime.now(UTC).date()  # the console's date filters are UTC days
    week = (today - timedelta(days=5)).isoformat()
    assert len(ids(**{"from": week})) == 7  # the call from nine days ago is left out
    old = (today - timedelta(days=9)).isoformat()
    assert len(ids(**{"from": old, "to": old})) == 1
    # search: both sides, any case, and % _ \ are literal characters, not wildcards
    assert ids(q="ETHERNET at the office") == [seeded.vpn]
    assert ids(q="paper jam") == ids(q="tray two")
    assert len(ids(q="paper jam")) == 1
    assert ids(q="%") == [] and ids(q="_") == [] and ids(q="\\") == []
    page = queries.list_calls(CallFilter.parse({"q": "ethernet"}))
    assert [p for p, hit in page.rows[0]["match"]["pieces"] if hit] == ["ethernet"]
    # sorting and paging
    rows = queries.list_calls(CallFilter.parse({"sort": "duration", "order": "asc"})).rows
    durations = [r["duration_secs"] for r in rows]
    assert durations == sorted(durations) and durations[0] == pytest.approx(30, abs=1)
    rows = queries.list_calls(CallFilter.parse({"sort": "v2v"})).rows
    v2v = [r["voice_to_voice_secs"] for r in rows]
    assert v2v[-1] is None and v2v[:-1] == sorted(v2v[:-1], reverse=True)
    started = [r["started_at"] for r in queries.list_calls(CallFilter()).rows]
    assert started == sorted(started, reverse=True)
    pages = [ids(per_page="3", page=str(n)) for n in (1, 2, 3)]
    assert [len(p) for p in pages] == [3, 3, 2] and len({i for p in pages for i in p}) == 8
    # export
    f = CallFilter.parse({"outcome": "ticket"})
    rows = queries.export_rows(f)
    table = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert {r["id"] for r in table} == set(seeded.by_outcome["ticket"])
    vpn_row = next(r for r in table if r["id"] == seeded.vpn)
    assert vpn_row["caller"] == "'+14155550134"  # a leading + would be a spreadsheet formula
    assert vpn_row["ticket"].startswith("INC") and vpn_row["turns"] == "5"
    exported = json.loads(to_json(rows, f))
    assert exported["filters"] == {"outcome": "ticket"} and exported["count"] == len(rows)
    # one call in detail
    detail = queries.call_detail(seeded.vpn)
    assert [t["index"] for t in detail["turns"]] == [0, 1, 2, 3, 4]
    assert detail["turns"][2]["interrupted"] and detail["turns"][0]["waterfall"] == []
    bars = {b["label"]: b for b in detail["turns"][3]["waterfall"]}
    assert bars["STT"]["start"] == 0 and bars["STT"]["end"] == pytest.approx(0.402, abs=0.002)
    assert bars["LLM first token"]["start"] == pytest.approx(0.455, abs=0.002)
    assert bars["First audio out"]["end"] == pytest.approx(1.446, abs=0.002)
    assert detail["tickets"][0]["category"] == "network" and detail["chart_secs"] == 1.5
    assert queries.call_detail("no-such-call") is None


def test_bad_filters_say_what_is_wrong():
    for params, words in (
        ({"outcome": "won"}, "outcome"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2025-02-01", "to": "2025-01-01"}, "after"),
        ({"sort": "caller"}, "sort"),
        ({"page": "0"}, "page"),
        ({"per_page": "5000"}, "per_page"),
        ({"q": "x" * 500}, "q"),
    ):
        with pytest.raises(QueryError, match=words):
            CallFilter.parse(params)


def test_api_lists_and_live_calls(console):
    client, _ = signed_in(console, "sam")
    r = client.get("/console/api/calls", params={"outcome": "ticket"})
    assert r.status_code == 200 and r.json()["total"] == len(console.seeded.by_outcome["ticket"])
    assert client.get("/console/api/calls", params={"outcome": "won"}).status_code == 400
    export = client.get("/console/api/export", params={"format": "csv", "q": "ethernet"})
    assert export.status_code == 200 and "attachment" in export.headers["content-disposition"]
    assert len(export.text.strip().splitlines()) == 2
    assert client.get("/console/api/calls/" + console.seeded.vpn).json()["outcome"] == "ticket"
    assert client.get("/console/api/live").json()["calls"] == []
    call_id = console.store.start_call("twilio", caller="+14155550100")
    console.store.add_turn(call_id, _turn(1, "reply", "my mouse is broken", "", time.time(), {}))
    _set_call(console.store, call_id, category="hardware")
    live = client.get("/console/api/live").json()["calls"]
    assert [c["id"] for c in live] == [call_id] and live[0]["turns"][0]["user_text"]


# -- the users command -----------------------------------------------------------------------------


def test_users_command_manages_accounts(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICE_AGENT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VOICE_AGENT_DATABASE_URL", f"sqlite:///{tmp_path / 'calls.db'}")
    runner = CliRunner()
    r = runner.invoke(
        users_app, ["add", "ada", "--role", "admin"], input=f"{PASSWORD}\n{PASSWORD}\n"
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        users_app, ["add", "sam", "--role", "supervisor", "--password-stdin"], input=PASSWORD
    )
    assert r.exit_code == 0, r.output
    users = UserStore(CallStore(f"sqlite:///{tmp_path / 'calls.db'}").engine)
    assert users.authenticate("sam", PASSWORD).role == "supervisor"
    r = runner.invoke(users_app, ["list"])
    assert "ada" in r.output and "admin" in r.output and "sam" in r.output
    assert runner.invoke(users_app, ["add", "x", "--role", "root"], input="").exit_code == 2
    r = runner.invoke(users_app, ["add", "bob", "--role", "admin", "--password-stdin"], input="abc")
    assert r.exit_code == 1 and "too short" in r.output
    r = runner.invoke(
        users_app, ["add", "sam", "--role", "admin", "--password-stdin"], input=PASSWORD
    )
    assert r.exit_code == 1 and "already exists" in r.output
    new = "another long password"
    r = runner.invoke(users_app, ["set-password", "sam", "--password-stdin"], input=new)
    assert r.exit_code == 0 and users.authenticate("sam", new) is not None
    assert runner.invoke(users_app, ["disable", "sam"]).exit_code == 0
    assert users.authenticate("sam", new) is None
    assert runner.invoke(users_app, ["disable", "sam", "--enable"]).exit_code == 0
    assert runner.invoke(users_app, ["remove", "sam"]).exit_code == 0
    assert users.by_name("sam") is None
    r = runner.invoke(users_app, ["remove", "sam"])
    assert r.exit_code == 1 and "no user" in r.output
    with pytest.raises(UserError, match="bad username"):
        users.add("bad name!", PASSWORD, "admin")
