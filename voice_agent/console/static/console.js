// Supervisor console: keyboard shortcut for search, and the live view (polls every 2 s).
// Everything from the server is inserted with textContent: transcripts are never HTML.
"use strict";

document.addEventListener("keydown", (e) => {
  const search = document.getElementById("q");
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement?.tagName);
  if (e.key === "/" && search && !typing) {
    e.preventDefault();
    search.focus();
    search.select();
  }
});

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

function clock(secs) {
  if (secs === null || secs === undefined) return "—";
  secs = Math.max(0, Math.round(secs));
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
}

function liveCard(call) {
  const who = call.caller_name || call.caller || "Unknown caller";
  const title = el("a", { href: "/console/calls/" + encodeURIComponent(call.id), text: who });
  const head = el("header", {},
    el("strong", {}, title),
    el("span", { class: "elapsed", text: clock(call.elapsed_secs) + " · " + call.transport }));
  const badges = el("div", { class: "meta" });
  if (call.category) badges.append(el("span", { class: "badge", text: call.category }), " ");
  if (call.priority) badges.append(el("span", { class: "badge " + call.priority, text: call.priority }));
  const card = el("article", { class: "card live-card", "data-call": call.id }, head, badges);
  if (!call.turns.length) card.append(el("p", { class: "muted", text: "Waiting for the first turn…" }));
  for (const t of call.turns) {
    if (t.user_text) {
      card.append(el("div", { class: "line caller" },
        el("div", { class: "meta" }, el("span", { class: "speaker", text: "Caller" }),
          el("span", { text: clock(t.caller_at) })),
        el("p", { text: t.user_text })));
    }
    if (t.bot_text) {
      const meta = el("div", { class: "meta" }, el("span", { class: "speaker", text: "Agent" }),
        el("span", { text: clock(t.agent_at) }));
      if (t.interrupted) meta.append(el("span", { class: "badge barge", text: "barge-in" }));
      card.append(el("div", { class: "line agent" }, meta, el("p", { text: t.bot_text })));
    }
  }
  return card;
}

async function pollLive(box) {
  const status = document.getElementById("live-status");
  const empty = document.getElementById("live-empty");
  try {
    const res = await fetch(box.dataset.source, { headers: { Accept: "application/json" }, cache: "no-store" });
    if (res.status === 401) { location.href = "/console/login?next=/console/live"; return; }
    if (!res.ok) throw new Error("HTTP " + res.status);
    const data = await res.json();
    box.replaceChildren(...data.calls.map(liveCard));
    empty.hidden = data.calls.length > 0;
    status.textContent = data.calls.length + " in progress · updated " + new Date().toLocaleTimeString();
  } catch (err) {
    status.textContent = "Could not update (" + err.message + "); retrying…";
  }
  setTimeout(() => pollLive(box), 2000);
}

const liveBox = document.getElementById("live");
if (liveBox) pollLive(liveBox);
