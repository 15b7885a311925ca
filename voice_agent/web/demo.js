// Browser side of the demo: microphone -> WebRTC -> the agent; the agent's voice and live events back.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { pc: null, dc: null, stream: null, ping: null, audioCtx: null, agentItem: null };
// Exposed for tests and curious users: peak level of the agent's audio as received (0..1).
window.agentAudioPeak = 0;

function setStatus(text) { $("status").textContent = text; }

function addLine(who, text) {
  const li = document.createElement("li");
  li.className = who;
  li.innerHTML = `<span class="who">${who === "caller" ? "You" : "Agent"}</span>`;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  li.appendChild(body);
  $("transcript").appendChild(li);
  li.scrollIntoView({ block: "end" });
  return body;
}

function meter(stream, onLevel) {
  const ctx = state.audioCtx || (state.audioCtx = new AudioContext());
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  const tick = () => {
    if (!state.pc) return;
    analyser.getFloatTimeDomainData(data);
    let peak = 0;
    for (const v of data) peak = Math.max(peak, Math.abs(v));
    onLevel(peak);
    requestAnimationFrame(tick);
  };
  tick();
}

function showTurn(turn) {
  const lat = turn.latency || {};
  const fmt = (v) => (v === undefined || v === null ? "–" : `${v.toFixed(2)} s`);
  const body = $("latency");
  if (body.querySelector(".empty")) body.innerHTML = "";
  const tr = document.createElement("tr");
  tr.innerHTML = `<td>${turn.index}</td><td>${fmt(lat.stt_secs)}</td><td>${fmt(lat.llm_first_token_secs)}</td>` +
    `<td>${fmt(lat.tts_first_audio_secs)}</td><td>${fmt(lat.voice_to_voice_secs)}</td>`;
  body.appendChild(tr);
}

function onEvent(event) {
  switch (event.type) {
    case "user":
      addLine("caller", event.text);
      state.agentItem = null;
      break;
    case "bot":
      if (!state.agentItem) state.agentItem = addLine("agent", "");
      state.agentItem.textContent = `${state.agentItem.textContent} ${event.text}`.trim();
      break;
    case "bot_stopped":
      state.agentItem = null;
      break;
    case "turn":
      if (turnHasLatency(event)) showTurn(event);
      break;
    case "triage":
    case "ticket":
      $("triage").classList.remove("empty");
      $("triage").textContent = JSON.stringify(event.data || event);
      break;
  }
}

// Turns the caller spoke in (greeting and fallbacks have no voice-to-voice latency).
function turnHasLatency(turn) { return turn.latency && turn.latency.voice_to_voice_secs !== undefined; }

async function call() {
  $("call").disabled = true;
  setStatus("Asking for the microphone…");
  try {
    state.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
    const configRes = await fetch("/api/config");
    if (configRes.status === 401) { window.location = "/console/login?next=/"; return; }
    const config = await configRes.json();
    const authHeaders = config.csrf_token ? { [config.csrf_header]: config.csrf_token } : {};
    const pc = new RTCPeerConnection({ iceServers: config.ice_servers.map((u) => ({ urls: u })) });
    state.pc = pc;
    meter(state.stream, (level) => { $("mic-level").style.width = `${Math.min(100, level * 140)}%`; });
    // Transceivers in the order the server expects: audio (sendrecv), then video (unused).
    pc.addTransceiver(state.stream.getAudioTracks()[0], { direction: "sendrecv" });
    pc.addTransceiver("video", { direction: "sendrecv" });
    state.dc = pc.createDataChannel("events");
    state.dc.onmessage = (m) => { try { onEvent(JSON.parse(m.data)); } catch (e) { console.warn(e); } };
    state.dc.onopen = () => { state.ping = setInterval(() => state.dc.send("ping"), 1000); };
    pc.ontrack = (e) => {
      if (e.track.kind !== "audio") return;
      const remote = new MediaStream([e.track]);
      $("remote").srcObject = remote;
      meter(remote, (level) => { window.agentAudioPeak = Math.max(window.agentAudioPeak, level); });
    };
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      setStatus({ connected: "Connected: speak now", connecting: "Connecting…",
                  failed: "Connection failed", disconnected: "Disconnected", closed: "Call ended" }[s] || s);
      if (s === "failed" || s === "closed") hangup();
    };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {  // gather candidates first: one round trip, no trickle needed
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
      setTimeout(resolve, 2000);
    });
    const res = await fetch("/api/offer", {
      method: "POST", headers: { "Content-Type": "application/json", ...authHeaders },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: pc.localDescription.type }),
    });
    if (!res.ok) throw new Error(`server refused the call: ${res.status} ${await res.text()}`);
    await pc.setRemoteDescription(await res.json());
    $("hangup").disabled = false;
  } catch (err) {
    setStatus(`Could not connect: ${err.message}`);
    hangup(false);
  }
}

function hangup(updateStatus = true) {
  if (state.ping) clearInterval(state.ping);
  if (state.pc) state.pc.close();
  if (state.stream) state.stream.getTracks().forEach((t) => t.stop());
  Object.assign(state, { pc: null, dc: null, stream: null, ping: null, agentItem: null });
  $("call").disabled = false;
  $("hangup").disabled = true;
  if (updateStatus) setStatus("Call ended");
}

$("call").addEventListener("click", call);
$("hangup").addEventListener("click", () => hangup());
