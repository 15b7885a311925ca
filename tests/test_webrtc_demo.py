"""The browser demo in a real browser: Debian's headless Chromium (driven by Playwright) with a
fake microphone that plays real speech, talking to a real server over WebRTC (aiortc)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import async_playwright

from tests.conftest import CLEAN, agent, gold_transcripts, serve
from tests.test_audio_and_stt import wer
from tests.test_console_browser import PASSWORD
from voice_agent.console.users import UserStore
from voice_agent.speech.audio import decode_audio_file, write_wav

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SPEECH = CLEAN / "fleurs_en_005.wav"  # loud, clear, 11 s


def caller_wav(tmp_path: Path) -> Path:
    """The fake microphone: silence while the agent greets, the question, then silence."""
    speech = decode_audio_file(SPEECH, 16000).samples
    quiet = np.zeros(16000 * 6, dtype=np.int16)
    pcm = np.concatenate([quiet, speech, np.zeros(16000 * 30, dtype=np.int16)])
    return write_wav(tmp_path / "caller.wav", pcm.tobytes(), 16000)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (./run.sh test)")
async def test_a_browser_call_shows_both_sides_and_is_stored(small_engines, tmp_path):
    app, store = agent(small_engines, tmp_path, llm_max_tokens=40)
    UserStore(store.engine).add("ada", PASSWORD, "supervisor")
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={caller_wav(tmp_path)}%noloop",
        "--autoplay-policy=no-user-gesture-required",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    async with serve(app) as host, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=args)
        page = await browser.new_page(viewport={"width": 1100, "height": 760})
        await page.goto(f"http://{host}/")
        assert "/console/login" in page.url  # the demo starts calls: signed-in users only
        await page.get_by_label("Username").fill("ada")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(f"http://{host}/")  # back to the demo
        await page.click("#call")
        await page.wait_for_selector("#transcript li.caller", timeout=90_000)
        await page.wait_for_function(
            "document.querySelectorAll('#transcript li.agent .text').length >= 2 &&"
            " [...document.querySelectorAll('#transcript li.agent .text')].at(-1)"
            ".textContent.length > 0",
            timeout=90_000,
        )
        await page.wait_for_function(  # the reply's latency row, once its turn has ended
            "[...document.querySelectorAll('#latency td:nth-child(5)')]"
            ".some(td => td.textContent.endsWith(' s'))",
            timeout=60_000,
        )
        # A pause mid-sentence may end the caller's turn early, and the rest arrive as a second
        # turn while the agent answers the first: what matters is that all their words show.
        gold = gold_transcripts()[f"clean/{SPEECH.name}"]
        caller = page.locator("#transcript li.caller .text")
        for _ in range(300):
            caller_text = " ".join(await caller.all_inner_texts())
            if wer(gold, caller_text) <= 0.3:
                break
            await asyncio.sleep(0.2)
        agent_lines = await page.locator("#transcript li.agent .text").all_inner_texts()
        peak = await page.evaluate("window.agentAudioPeak")
        shot = Path(os.environ.get("VOICE_AGENT_SCREENSHOT", tmp_path / "demo.png"))
        await page.screenshot(path=str(shot), full_page=True)
        await page.click("#hangup")
        await browser.close()
        for _ in range(100):  # the server notices the peer is gone and closes the record
            if store.list_calls() and store.list_calls()[0]["status"] != "in_progress":
                break
            await asyncio.sleep(0.1)

    assert wer(gold, caller_text) <= 0.3, caller_text
    assert "IT helpdesk" in agent_lines[0]  # the greeting
    assert any(line.strip() for line in agent_lines[1:])  # a reply
    assert peak > 0.02, peak  # the agent's voice arrived on the remote track, not silence
    calls = store.list_calls()
    assert len(calls) == 1 and calls[0]["transport"] == "webrtc"
    stored = store.get_call(calls[0]["id"])
    assert stored["status"] == "completed" and stored["end_reason"] == "caller_hung_up"
    stored_caller_text = " ".join(t["user_text"] for t in stored["turns"] if t["user_text"])
    assert wer(gold, stored_caller_text) <= 0.3, stored_caller_text


async def test_a_bad_offer_is_refused_clearly(small_engines, tmp_path):
    from fastapi.testclient import TestClient

    app, _ = agent(small_engines, tmp_path, demo_public=True)
    with TestClient(app) as client:
        assert client.post("/api/offer", json={"type": "answer"}).status_code == 400
        bad = client.post("/api/offer", json={"sdp": "v=0 garbage", "type": "offer"})
        assert bad.status_code == 400 and "not a usable offer" in bad.text
        assert client.patch("/api/offer", json={"candidates": []}).status_code == 400
        page = client.get("/")
        assert page.status_code == 200 and 'id="call"' in page.text
        assert "https://" not in page.text  # no CDN: works offline
