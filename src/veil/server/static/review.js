// Veil review page: decisions, reveal, mask correction, keyboard shortcuts. No framework.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  async function post(url, body) {
    const r = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body || {}),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
    return data;
  }

  function typing(e) {
    const t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
  }

  // ---- queue -------------------------------------------------------------------------------
  const queue = document.getElementById("queue");
  if (queue) {
    const cards = Array.from(queue.querySelectorAll(".card"));
    const bulk = document.getElementById("bulk-confirm");
    let at = 0;
    const selected = () => cards.filter(c => c.querySelector(".select").checked).map(c => c.dataset.id);
    const refresh = () => {
      const n = selected().length;
      document.getElementById("n-selected").textContent = n;
      bulk.disabled = n === 0;
      cards.forEach((c, i) => c.classList.toggle("at", i === at));
    };
    queue.addEventListener("change", refresh);
    bulk.addEventListener("click", async () => {
      const ids = selected();
      if (!ids.length) return;
      try { await post("/v1/items/decisions", {ids: ids, action: "confirm"}); location.reload(); }
      catch (err) { alert(err.message); }
    });
    document.addEventListener("keydown", e => {
      if (typing(e) || !cards.length) return;
      if (e.key === "j") { at = Math.min(cards.length - 1, at + 1); }
      else if (e.key === "k") { at = Math.max(0, at - 1); }
      else if (e.key === "x") { const b = cards[at].querySelector(".select"); b.checked = !b.checked; }
      else if (e.key === "Enter") { location.href = "/review/" + cards[at].dataset.id; return; }
      else if (e.key === "C" && e.shiftKey) { bulk.click(); return; }
      else return;
      e.preventDefault(); refresh();
      cards[at].scrollIntoView({block: "nearest"});
    });
    refresh();
  }

  // ---- one item ----------------------------------------------------------------------------
  const item = document.getElementById("item");
  if (!item) return;
  const id = item.dataset.id;
  const view = document.getElementById("view");
  const status = document.getElementById("status");
  const original = document.getElementById("original");
  const say = (msg, bad) => { status.textContent = msg; status.classList.toggle("bad", !!bad); };

  function hideOriginal() {  // the original never stays on the page once the moderator moves on
    original.hidden = true;
    original.removeAttribute("src");
  }
  window.addEventListener("pagehide", hideOriginal);
  window.addEventListener("beforeunload", hideOriginal);

  document.querySelectorAll(".tabs button[data-view]").forEach(b => b.addEventListener("click", () => {
    document.querySelectorAll(".tabs button").forEach(x => x.classList.remove("on"));
    b.classList.add("on");
    view.src = view.dataset[b.dataset.view];
  }));
  const grey = document.getElementById("greyscale");
  const applyGrey = () => document.querySelectorAll("#view, #preview, #original")
    .forEach(img => img.classList.toggle("greyscale", grey.checked));
  grey.addEventListener("change", applyGrey);

  async function decide(action) {
    try {
      const reason = document.getElementById("decision-reason").value || null;
      const out = await post("/v1/items/" + id + "/decision", {action: action, reason: reason});
      document.getElementById("review-state").textContent = out.review;
      say("recorded: " + action);
    } catch (err) { say(err.message, true); }
  }
  document.querySelectorAll("[data-action]").forEach(b =>
    b.addEventListener("click", () => decide(b.dataset.action)));

  const revealForm = document.getElementById("reveal-form");
  revealForm.addEventListener("submit", async e => {
    e.preventDefault();
    const reason = document.getElementById("reveal-reason").value.trim();
    try {
      const out = await post("/v1/items/" + id + "/reveal", {reason: reason});
      original.src = out.url;
      original.hidden = false;
      applyGrey();
      if (out.session_reveals !== undefined)
        document.getElementById("reveal-count").textContent = out.session_reveals;
      say("original revealed (logged)");
    } catch (err) { say(err.message, true); }
  });

  // mask correction: click regions on the preview to toggle them; save only after re-verification
  const box = document.getElementById("correct");
  const preview = document.getElementById("preview");
  const verdict = document.getElementById("verdict");
  const save = document.getElementById("save-mask");
  let segments = null;
  function show(out) {
    segments = out.segments;
    preview.src = out.preview;
    applyGrey();
    const scores = out.models_after.map(m => m.name + " " + m.unsafe_score.toFixed(3)).join(", ");
    verdict.textContent = (out.unsafe ? "still UNSAFE" : "safe") + " after correction (" + scores + ")";
    verdict.classList.toggle("bad", out.unsafe);
    save.disabled = out.unsafe;
  }
  async function startCorrect() {
    if (!box) return;
    box.hidden = false;
    try { show(await post("/v1/items/" + id + "/mask/preview", {})); } catch (err) { say(err.message, true); }
  }
  if (box) {
    document.getElementById("start-correct").addEventListener("click", startCorrect);
    document.getElementById("cancel-mask").addEventListener("click", () => { box.hidden = true; });
    preview.addEventListener("click", async e => {
      const r = preview.getBoundingClientRect();
      const x = (e.clientX - r.left) / r.width, y = (e.clientY - r.top) / r.height;
      save.disabled = true;
      verdict.textContent = "judging…";
      try { show(await post("/v1/items/" + id + "/mask/preview", {segments: segments, toggle: [x, y]})); }
      catch (err) { say(err.message, true); }
    });
    save.addEventListener("click", async () => {
      try {
        await post("/v1/items/" + id + "/mask", {segments: segments,
          reason: document.getElementById("decision-reason").value || null});
        say("corrected mask saved");
        view.src = view.dataset.delivered + "?v=" + Date.now();
        box.hidden = true;
      } catch (err) { say(err.message, true); }
    });
  }

  document.addEventListener("keydown", e => {
    if (e.key === "Escape") { hideOriginal(); if (document.activeElement) document.activeElement.blur(); return; }
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    const keys = {c: "confirm", o: "overturn", e: "escalate"};
    if (keys[e.key]) { decide(keys[e.key]); }
    else if (e.key === "g") { grey.checked = !grey.checked; applyGrey(); }
    else if (e.key === "r") { document.getElementById("reveal-reason").focus(); }
    else if (e.key === "m") { startCorrect(); }
    else if (e.key === "n" && item.dataset.next) { hideOriginal(); location.href = "/review/" + item.dataset.next; }
    else return;
    e.preventDefault();
  });
})();
