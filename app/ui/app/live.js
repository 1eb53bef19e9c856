// Live figures: totals, a one-minute chart of generation tokens/s per model, and the last
// finished requests with their time to first token.
"use strict";
(function (H) {
  const HISTORY = 60; // seconds shown in the chart
  const series = new Map(); // model id -> [[time, tokens/s], ...]

  function remember(time, models) {
    for (const m of models) {
      const rate = m.live.generation_tokens_per_second;
      const points = series.get(m.id) || [];
      if (!points.length && !rate) continue;
      points.push([time, rate]);
      while (points.length && points[0][0] < time - HISTORY) points.shift();
      series.set(m.id, points);
    }
  }

  function draw(canvas, now) {
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    let top = 1;
    for (const points of series.values()) for (const [, r] of points) top = Math.max(top, r);
    top = Math.pow(10, Math.ceil(Math.log10(top * 1.1)));
    const style = getComputedStyle(canvas);
    ctx.strokeStyle = style.getPropertyValue("--grid") || "#ccc";
    ctx.fillStyle = style.color;
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, height - 0.5);
    ctx.lineTo(width, height - 0.5);
    ctx.stroke();
    ctx.fillText(top + " tok/s", 4, 12);
    ctx.fillText("−" + HISTORY + " s", 4, height - 4);
    const x = (t) => width - ((now - t) / HISTORY) * width;
    const y = (r) => height - 1 - (r / top) * (height - 16);
    for (const [id, points] of series) {
      if (points.length < 2) continue;
      ctx.strokeStyle = H.color(id);
      ctx.lineWidth = 2;
      ctx.beginPath();
      points.forEach(([t, r], i) => (i ? ctx.lineTo(x(t), y(r)) : ctx.moveTo(x(t), y(r))));
      ctx.stroke();
    }
  }

  function recentRows(tbody, recent) {
    tbody.replaceChildren(...recent.slice(0, 8).map((r) => {
      const when = new Date(r.ended_at * 1000).toLocaleTimeString();
      return H.el("tr", { "data-status": r.status, "data-model": r.model },
        H.el("td", { class: "opt", text: when }), H.el("td", { text: r.model }),
        H.el("td", { text: r.status }),
        H.el("td", { class: "num ttft", text: H.seconds(r.ttft_seconds) }),
        H.el("td", { class: "num opt", text: r.generated_tokens }),
        H.el("td", { class: "num", text: H.rate(r.tokens_per_second) }));
    }));
    if (!recent.length) {
      tbody.append(H.el("tr", {}, H.el("td", { colspan: 6, class: "muted", text: "no requests yet" })));
    }
  }

  let lastRecent = "";
  H.renderLive = function (snapshot) {
    const now = snapshot.time;
    remember(now, snapshot.models);
    let gen = 0; let running = 0; let waiting = 0; let loaded = 0;
    for (const m of snapshot.models) {
      gen += m.live.generation_tokens_per_second;
      running += m.live.requests_running;
      waiting += m.live.requests_waiting;
      if (m.status === "loaded") loaded += 1;
    }
    const summary = H.$("live-summary");
    const stat = (name, value) => H.el("div", { class: "stat", "data-stat": name },
      H.el("b", { text: value }), H.el("span", { text: name }));
    summary.replaceChildren(stat("tok/s generated", H.rate(gen)), stat("running", running),
      stat("queued", waiting), stat("models loaded", loaded));
    draw(H.$("live-chart"), now);
    const key = JSON.stringify(snapshot.recent);
    if (key !== lastRecent) {
      lastRecent = key;
      recentRows(H.$("recent").tBodies[0], snapshot.recent);
    }
  };
})(window.Halo);
