// The models table: one row per catalog model, updated in place from /events, with Load /
// Unload buttons; and the Pull form when the server has POST /models/pull.
"use strict";
(function (H) {
  const rows = new Map(); // model id -> {tr, cells, button}
  const pending = new Set(); // model ids with a load/unload request in flight
  let errorLine = null;

  function act(id, action) {
    pending.add(id);
    H.setText(errorLine, "");
    H.api("/models/" + action, { method: "POST", body: { model: id } })
      .catch((err) => H.setText(errorLine, action + " " + id + ": " + err.message))
      .finally(() => pending.delete(id));
  }

  const LABELS = { size: "size", slots: "slots", gen: "tok/s" }; // shown on a phone

  function makeRow(tbody, id) {
    const cells = {};
    const tr = H.el("tr", { "data-model": id });
    for (const name of ["model", "status", "size", "ctx", "slots", "idle", "gen", "prompt"]) {
      const opt = name === "ctx" || name === "idle" || name === "prompt";
      const num = !(name === "model" || name === "status");
      cells[name] = tr.appendChild(H.el("td", { class: ["c-" + name, num ? "num" : "", opt ? "opt" : ""]
        .join(" ").trim(), "data-label": LABELS[name] || null }));
    }
    cells.model.append(H.el("span", { class: "swatch" }), H.el("span", { class: "id", text: id }));
    cells.model.firstChild.style.setProperty("--c", H.color(id));
    cells.status.append(H.el("span", { class: "status" }));
    const button = H.el("button", { type: "button", class: "action" });
    button.addEventListener("click", () => act(id, button.dataset.action));
    tr.append(H.el("td", { class: "act" }, button));
    tbody.append(tr);
    return { tr, cells, button };
  }

  function idleText(m) {
    const ttl = m.pinned ? "pinned" : m.ttl_seconds > 0 ? H.short(m.ttl_seconds) : "no TTL";
    if (m.idle_seconds === null || m.idle_seconds === undefined) return ttl;
    return H.short(m.idle_seconds) + " / " + ttl;
  }

  H.renderModels = function (table, models) {
    const tbody = table.tBodies[0];
    const seen = new Set();
    for (const m of models) {
      seen.add(m.id);
      const row = rows.get(m.id) || makeRow(tbody, m.id);
      rows.set(m.id, row);
      const c = row.cells;
      const status = c.status.firstChild;
      H.setText(status, m.status);
      status.className = "status status-" + m.status;
      status.title = m.failure || "";
      H.setText(c.size, H.bytes(m.size_bytes));
      H.setText(c.ctx, H.count(m.n_ctx) + (m.context_length ? " / " + H.count(m.context_length) : ""));
      c.ctx.title = "context per request " + m.n_ctx + ", trained " + (m.context_length || "?");
      H.setText(c.slots, m.slots_busy + " / " + m.parallel +
        (m.requests_queued ? " +" + m.requests_queued + " queued" : ""));
      H.setText(c.idle, idleText(m));
      H.setText(c.gen, H.rate(m.live.generation_tokens_per_second));
      H.setText(c.prompt, H.rate(m.live.prompt_tokens_per_second));
      const up = m.status === "loaded" || m.status === "draining" || m.status === "loading";
      const action = up ? "unload" : "load";
      row.button.dataset.action = action;
      H.setText(row.button, pending.has(m.id) ? "…" : up ? "Unload" : "Load");
      row.button.disabled = pending.has(m.id) || m.status === "draining";
    }
    for (const [id, row] of rows) {
      if (!seen.has(id)) { row.tr.remove(); rows.delete(id); }
    }
  };

  // Pull with progress: SSE events {"status","file","completed","total"}, then a final one.
  function setupPull(form) {
    form.hidden = false;
    const input = H.$("pull-model");
    const bar = H.$("pull-progress");
    const line = H.$("pull-status");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const model = input.value.trim();
      if (!model) return;
      const go = H.$("pull-go");
      go.disabled = true;
      bar.hidden = false;
      bar.value = 0;
      H.setText(line, "starting…");
      let failed = null;
      try {
        const body = { model };
        if (H.$("pull-force").checked) body.force = true;
        await H.sse("/models/pull", { body, onData: (data) => {
          if (data === "[DONE]") return;
          const ev = JSON.parse(data);
          if (ev.error) { failed = ev.error.message || String(ev.error); return; }
          if (ev.status === "success") {
            bar.value = bar.max;
            H.setText(line, "pulled " + (ev.model || model));
            return;
          }
          if (ev.total) { bar.max = ev.total; bar.value = ev.completed || 0; }
          const size = ev.total ? " " + H.bytes(ev.completed || 0) + " / " + H.bytes(ev.total) : "";
          H.setText(line, [ev.status, ev.file].filter(Boolean).join(" ") + size +
            (ev.model && !ev.file ? " " + ev.model : ""));
        } });
      } catch (err) {
        failed = err.message;
      } finally {
        go.disabled = false;
      }
      if (failed) { bar.hidden = true; H.setText(line, "pull failed: " + failed); }
    });
  }

  H.initModels = function (config) {
    errorLine = H.$("models-error");
    if (config.features && config.features.pull) setupPull(H.$("pull"));
  };
})(window.Halo);
