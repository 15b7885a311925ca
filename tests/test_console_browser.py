"""The supervisor console in a real browser: Debian's headless Chromium (driven by Playwright)
against the console served over real HTTP on loopback, reading a real SQLite call store.

The calls are written through ``CallStore`` the way the call runner writes them (turns with their
stage timestamps, citations, a ticket), with the triage and outcome columns set as the
conversation sets them. ``VOICE_AGENT_CONSOLE_SCREENSHOT=docs/console-call-detail.png`` keeps the
call detail screenshot that the README shows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.async_api import async_playwright
from sqlalchemy.orm import Session

from tests.conftest import serve
from voice_agent.console.routes import console_router
from voice_agent.console.users import UserStore
from voice_agent.records import TurnRecord
from voice_agent.settings import Settings, load_settings
from voice_agent.storage import Call, CallStore
from voice_agent.tickets.records import NewTicket, TicketRecords

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "correct horse battery staple"


# -- realistic call records ------------------------------------------------------------------------


def _turn(index: int, kind: str, user: str, bot: str, at: float, offsets: dict[str, float], **kw):
    """A turn whose stages are ``at`` (speech end, or the bot's start) plus ``offsets``."""
    return TurnRecord(
        index=index,
        kind=kind,
        user_text=user,
        bot_text=bot,
        stages={stage: round(at + secs, 3) for stage, secs in offsets.items()},
        **kw,
    )


def _set_call(store: CallStore, call_id: str, **values) -> None:
    with Session(store.engine) as s, s.begin():
        call = s.get(Call, call_id)
        for name, value in values.items():
            setattr(call, name, value)


VPN_RUNBOOK = {
    "path": "network/vpn-disconnects.md",
    "title": "VPN disconnects or will not connect",
    "similarity": 0.83,
}


def add_vpn_call(store: CallStore) -> str:
    """The call the README screenshot shows: a VPN problem walked through, then a ticket."""
    call_id = store.start_call("twilio", caller="+14155550134", external_id="CA5f0e9b2c")
    t0 = time.time() - 95
    _set_call(store, call_id, started_at=datetime.fromtimestamp(t0, UTC))
    greeting = (
        "Hi, you've reached the Example Corp IT helpdesk. I'm a virtual agent. "
        "What can I help you with?"
    )
    store.add_turn(
        call_id,
        _turn(0, "greeting", "", greeting, t0 + 0.4, {"first_audio_out": 0, "bot_done": 5.1}),
    )
    store.add_turn(
        call_id,
        _turn(
            1,
            "reply",
            "Hi, my VPN keeps disconnecting every few minutes since this morning and I can't "
            "get to the file shares.",
            "Sorry about that. Let's try the first step: in the VPN client, sign out, then sign "
            "back in with your usual account. Did that work?",
            t0 + 13.2,
            {
                "speech_start": -5.6,
                "speech_end": 0,
                "turn_end": 0.212,
                "stt_done": 0.338,
                "triage_done": 0.371,
                "lookup_done": 0.429,
                "first_sentence": 0.446,
                "tts_first_audio": 0.672,
                "first_audio_out": 0.709,
                "answer_audio_out": 0.709,
                "bot_done": 8.4,
            },
            citations=[{**VPN_RUNBOOK, "section": "Step 1: Sign out and back in"}],
        ),
    )
    store.add_turn(
        call_id,
        _turn(
            2,
            "reply",
            "No, it still drops after a couple of minutes.",
            "OK. Next step: restart your Wi-Fi router, or move closer to it, and then connect "
            "the VPN again. Did that",
            t0 + 27.0,
            {
                "speech_start": -2.4,
                "speech_end": 0,
                "turn_end": 0.188,
                "stt_done": 0.297,
                "lookup_done": 0.341,
                "first_sentence": 0.356,
                "tts_first_audio": 0.581,
                "first_audio_out": 0.622,
                "answer_audio_out": 0.622,
                "bot_done": 3.1,
            },
            interrupted=True,
            citations=[{**VPN_RUNBOOK, "section": "Step 2: Check the Wi-Fi connection"}],
        ),
    )
    number = (
        TicketRecords(store)
        .insert(
            NewTicket(
                summary="VPN drops every few minutes on the office wired network since this "
                "morning; sign-out/sign-in did not help.",
                call_id=call_id,
                caller="+14155550134",
                category="network",
                priority="P2",
                reason="steps_exhausted",
            )
        )
        .number
    )
    store.add_turn(
        call_id,
        _turn(
            3,
            "reply",
            "I'm on ethernet at the office, so that won't help. Can you just open a ticket? "
            "My email is dana.whitfield@example.com.",
            f"Of course. I've opened ticket {number} for the network team; they'll email you "
            "today. Is there anything else?",
            t0 + 34.5,
            {
                "speech_start": -4.9,
                "speech_end": 0,
                "turn_end": 0.231,
                "stt_done": 0.402,
                "lookup_done": 0.455,
                "llm_first_token": 0.961,
                "first_sentence": 1.187,
                "tts_first_audio": 1.402,
                "first_audio_out": 1.446,
                "answer_audio_out": 1.446,
                "bot_done": 9.7,
            },
            prompt_tokens=412,
            completion_tokens=38,
        ),
    )
    store.add_turn(
        call_id,
        _turn(
            4,
            "reply",
            "No, that's all. Thanks!",
            "You're welcome. Goodbye!",
            t0 + 49.8,
            {
                "speech_start": -1.3,
                "speech_end": 0,
                "turn_end": 0.176,
                "stt_done": 0.254,
                "llm_first_token": 0.598,
                "first_sentence": 0.705,
                "tts_first_audio": 0.862,
                "first_audio_out": 0.905,
                "bot_done": 2.2,
            },
            prompt_tokens=451,
            completion_tokens=7,
        ),
    )
    store.end_call(call_id, status="completed", end_reason="caller_hung_up")
    _set_call(
        store,
        call_id,
        ended_at=datetime.fromtimestamp(t0 + 53.0, UTC),
        caller_name="Dana Whitfield",
        category="network",
        priority="P2",
        outcome="ticket",
        triage={
            "category": "network",
            "priority": "P2",
            "confidence": 0.87,
            "source": "classifier",
        },
        models={"stt": "whisper-base", "tts": "piper-joe-medium", "llm": "qwen2.5-coder-1.5b"},
    )
    return call_id


@dataclass
class Seeded:
    vpn: str
    all: list[str]
    by_outcome: dict[str, list[str]]


def seed_calls(store: CallStore) -> Seeded:
    """The VPN call plus a week of other calls across categories, outcomes and transports."""
    vpn = add_vpn_call(store)
    others = [
        # (days ago, transport, category, priority, outcome, caller words, agent words, v2v secs)
        (0, "webrtc", "account_access", "P3", "resolved", "I forgot my password again",
         "I can help you reset it. Go to the self-service password page.", 0.61),
        (1, "twilio", "printer", "P4", "resolved", "The third floor printer shows paper jam",
         "Open tray two and remove any stuck paper.", 0.74),
        (1, "twilio", "email", "P3", "transferred", "Outlook keeps asking for my password",
         "Let me transfer you to a colleague.", 0.92),
        (2, "twilio", "hardware", "P2", "ticket", "My laptop will not turn on at all",
         "I've opened a ticket for desktop support.", 1.31),
        (3, "webrtc", "security", "P1", "transferred", "I clicked a link in a phishing email",
         "Please disconnect from the network; I'm transferring you now.", 0.58),
        (4, "twilio", None, None, "abandoned", "hello?", "Hi, are you still there?", None),
        (9, "twilio", "network", "P3", "resolved", "The wifi in meeting room B is slow",
         "Try forgetting the network and joining it again.", 0.83),
    ]  # fmt: skip
    by_outcome: dict[str, list[str]] = {"ticket": [vpn]}
    ids = [vpn]
    for days, transport, category, priority, outcome, user, bot, v2v in others:
        call_id = store.start_call(transport, caller=f"+1415555{len(ids):04d}")
        # an hour before now, that many days ago, but never before that day began (UTC):
        # the date filters count calls by the day they started on
        day_began = datetime.combine(
            (datetime.now(UTC) - timedelta(days=days)).date(), dtime.min, UTC
        )
        t0 = max(time.time() - days * 86400 - 3600, day_began.timestamp() + 60)
        store.add_turn(call_id, _turn(0, "greeting", "", "Hi, IT helpdesk.", t0, {"bot_done": 3}))
        offsets = {"speech_start": -2, "speech_end": 0, "stt_done": 0.3, "bot_done": 4}
        if v2v is not None:
            offsets["first_audio_out"] = v2v
        store.add_turn(call_id, _turn(1, "reply", user, bot, t0 + 6, offsets))
        store.end_call(call_id, status="completed", end_reason="caller_hung_up")
        _set_call(
            store,
            call_id,
            started_at=datetime.fromtimestamp(t0, UTC),
            ended_at=datetime.fromtimestamp(t0 + 20 + 10 * len(ids), UTC),
            category=category,
            priority=priority,
            outcome=outcome,
        )
        ids.append(call_id)
        by_outcome.setdefault(outcome, []).append(call_id)
    return Seeded(vpn=vpn, all=ids, by_outcome=by_outcome)


# -- the console on a real server ------------------------------------------------------------------


def console_settings(tmp_path: Path, **overrides) -> Settings:
    return load_settings(
        data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'calls.db'}", **overrides
    )


def console_app(settings: Settings) -> tuple[FastAPI, CallStore]:
    """The console router over its call store, as ``create_app`` mounts it (no voice models)."""
    store = CallStore.from_settings(settings)
    app = FastAPI()
    app.include_router(console_router(settings))
    app.state.store = store
    return app, store


async def _login(page, base: str, username: str) -> None:
    await page.goto(f"{base}/console/calls")
    assert "/console/login" in page.url  # anonymous: sent to the login form
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{base}/console/calls")


def _rows(page):
    return page.locator("table.calls tbody tr[data-call]")


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (./run.sh test)")
async def test_a_supervisor_reviews_calls_and_watches_a_live_one(tmp_path):
    settings = console_settings(tmp_path)
    app, store = console_app(settings)
    seeded = seed_calls(store)
    UserStore(store.engine).add("sam", PASSWORD, "supervisor")
    async with serve(app) as host, async_playwright() as pw:
        base = f"http://{host}"
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await _login(page, base, "sam")
        assert await _rows(page).count() == len(seeded.all)
        assert await page.locator("nav >> text=Users").count() == 0  # supervisors don't manage

        # filter: outcome "ticket"
        await page.get_by_label("Outcome").select_option("ticket")
        await page.get_by_role("button", name="Apply").click()
        await page.wait_for_url("**/console/calls?*outcome=ticket*")
        shown = await _rows(page).evaluate_all("rows => rows.map(r => r.dataset.call)")
        assert sorted(shown) == sorted(seeded.by_outcome["ticket"])
        csv_link = await page.locator("#export-csv").get_attribute("href")
        assert "outcome=ticket" in csv_link  # the export carries the same filters

        # full-text search in the transcripts (words the caller said), filters cleared
        await page.goto(f"{base}/console/calls")
        await page.keyboard.press("/")  # keyboard shortcut to the search box
        await page.keyboard.type("ethernet at the office")
        await page.keyboard.press("Enter")
        await page.wait_for_url("**/console/calls?*q=ethernet*")
        assert await _rows(page).count() == 1
        assert await page.locator("table.calls mark").inner_text() == "ethernet at the office"

        # open the call: transcript turn by turn, barge-in, citations, ticket, latency charts
        await _rows(page).first.locator("a").first.click()
        await page.wait_for_url(f"{base}/console/calls/{seeded.vpn}")
        callers = await page.locator("#transcript .line.caller p").all_inner_texts()
        assert len(callers) == 4 and callers[0].startswith("Hi, my VPN keeps disconnecting")
        assert "[email]" in callers[2] and "dana.whitfield@" not in await page.content()
        agents = await page.locator("#transcript .line.agent p").all_inner_texts()
        assert agents[0].startswith("Hi, you've reached") and len(agents) == 5
        barge = page.locator("#turn-2 .badge.barge")
        assert await barge.count() == 1 and "barge-in" in await barge.inner_text()
        assert "Step 1: Sign out" in await page.locator("#turn-1 .citations").inner_text()
        ticket_number = store.tickets_for_call(seeded.vpn)[0]["number"]
        assert ticket_number in await page.locator("#ticket-h + dl").inner_text()
        charts = page.locator("svg.waterfall")
        assert await charts.count() == 4  # every turn where the caller spoke; not the greeting
        chart = page.locator('svg.waterfall[data-turn="3"]')
        labels = await chart.locator("text.label").all_text_contents()
        assert labels[:2] == ["STT", "Turn detection"] and "LLM first token" in labels
        widths = await chart.locator("rect").evaluate_all(
            "rects => rects.map(r => r.getBBox().width)"
        )
        assert len(widths) == len(labels) and all(w > 0 for w in widths)
        box = await chart.bounding_box()
        assert box["width"] > 300 and box["height"] > 100  # drawn, visible, not collapsed
        shot = Path(os.environ.get("VOICE_AGENT_CONSOLE_SCREENSHOT", tmp_path / "detail.png"))
        await page.screenshot(path=str(shot), full_page=True)

        # live view: a call that starts while the page is open shows up without a reload
        await page.get_by_role("link", name="Live").click()
        await page.wait_for_url(f"{base}/console/live")
        await page.wait_for_selector("#live-status:has-text('0 in progress')")
        reloads = []
        page.on("framenavigated", lambda frame: reloads.append(frame.url))
        call_id = await asyncio.to_thread(store.start_call, "twilio", caller="+14155550199")
        await asyncio.to_thread(
            store.add_turn,
            call_id,
            _turn(
                1,
                "reply",
                "My Teams calls keep dropping",
                "Let's check your network first.",
                time.time() - 1,
                {"speech_start": -2, "speech_end": 0, "first_audio_out": 0.7},
            ),
        )
        card = page.locator(f'article.live-card[data-call="{call_id}"]')
        await card.wait_for(timeout=8000)
        assert "My Teams calls keep dropping" in await card.inner_text()
        assert reloads == []  # appeared by polling, not by navigation
        await asyncio.to_thread(store.end_call, call_id, status="completed")
        await card.wait_for(state="detached", timeout=8000)
        await browser.close()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (./run.sh test)")
async def test_an_admin_adds_a_user_and_sees_settings_masked(tmp_path):
    settings = console_settings(tmp_path, twilio_auth_token="tw-secret-123456")
    app, store = console_app(settings)
    UserStore(store.engine).add("ada", PASSWORD, "admin")
    async with serve(app) as host, async_playwright() as pw:
        base = f"http://{host}"
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await _login(page, base, "ada")
        await page.get_by_role("link", name="Users").click()
        await page.get_by_label("Username").fill("sam")
        await page.get_by_label("Role").select_option("supervisor")
        await page.get_by_label("Password (10+ characters)").fill(PASSWORD)
        await page.get_by_role("button", name="Add user").click()
        await page.wait_for_selector("text=Added sam.")
        assert UserStore(store.engine).by_name("sam").role == "supervisor"
        await page.get_by_role("link", name="Settings").click()
        body = await page.inner_text("main")
        assert "twilio_auth_token" in body and "tw-secret-123456" not in body
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url("**/console/login")
        await page.goto(f"{base}/console/calls")
        assert "/console/login" in page.url  # signed out for real
        await browser.close()
