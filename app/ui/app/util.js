// Shared helpers: DOM building (text only, never HTML strings), formatting, API calls, and
// a Server-Sent Events reader over fetch (so the API key travels in a header).
"use strict";
window.Halo = window.Halo || {};
(function (H) {
  let apiKey = "";

  H.setKey = (key) => { apiKey = key || ""; };

  H.$ = (id) => document.getElementById(id);

  // el("div", {class: "x", title: "..."}, child, "text", ...): children are nodes or text.
  H.el = function (tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  };

  H.setText = (node, text) => {
    const value = String(text);
    if (node.textContent !== value) node.textContent = value;
  };

  H.bytes = function (n) {
    if (n === null || n === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    let v = Number(n);
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return (i === 0 ? v.toFixed(0) : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)) + " " + units[i];
  };

  H.seconds = function (s) {
    if (s === null || s === undefined) return "–";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    return (s / 3600).toFixed(1) + " h";
  };

  // 42 s, 3 min, 1.5 h: for idle times and TTLs.
  H.short = function (s) {
    if (s < 60) return Math.floor(s) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  };

  H.rate = (r) => (r === null || r === undefined ? "–" : r >= 100 ? r.toFixed(0) : r.toFixed(1));

  // One colour per model: distinct ones in catalog order (H.assignColors), else a hash.
  const PALETTE = ["#3b82f6", "#e8a33d", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4",
    "#f97316", "#84cc16", "#ec4899", "#64748b"];
  const colors = new Map();
  H.assignColors = function (ids) {
    ids.forEach((id, i) => { if (!colors.has(id)) colors.set(id, PALETTE[colors.size % PALETTE.length]); });
  };
  H.color = function (id) {
    if (colors.has(id)) return colors.get(id);
    let h = 0;
    for (const ch of String(id)) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return "hsl(" + (h % 360) + " 62% 52%)";
  };

  H.count = (n) => (n >= 1024 && n % 1024 === 0 ? n / 1024 + "k" : String(n));

  H.headers = function (extra) {
    const out = Object.assign({}, extra || {});
    if (apiKey) out.Authorization = "Bearer " + apiKey;
    return out;
  };

  // The error message of an API error envelope (OpenAI shape) or the HTTP status.
  H.errorText = async function (resp) {
    try {
      const body = await resp.json();
      if (body && body.error) return body.error.message || JSON.stringify(body.error);
    } catch (_) { /* not JSON */ }
    return "HTTP " + resp.status;
  };

  H.unauthorized = function () {
    sessionStorage.removeItem("halo.apiKey");
    localStorage.removeItem("halo.apiKey");
    location.reload();
  };

  // fetch with the key; JSON in and out; throws Error(message) on an error status.
  H.api = async function (path, options) {
    const opts = Object.assign({}, options || {});
    opts.headers = H.headers(opts.body ? { "Content-Type": "application/json" } : {});
    if (opts.body && typeof opts.body !== "string") opts.body = JSON.stringify(opts.body);
    const resp = await fetch(path, opts);
    if (resp.status === 401) H.unauthorized();
    if (!resp.ok) throw new Error(await H.errorText(resp));
    return resp.json();
  };

  // POST or GET `path` and call onData(text) for each SSE `data:` field until the stream
  // ends. Resolves when it ends; rejects on an error status (message from the envelope)
  // or a network error; an abort through `signal` rejects with an AbortError.
  H.sse = async function (path, { body, signal, onData, onOpen } = {}) {
    const opts = { signal, headers: H.headers({ Accept: "text/event-stream" }) };
    if (body !== undefined) {
      opts.method = "POST";
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const resp = await fetch(path, opts);
    if (resp.status === 401) H.unauthorized();
    if (!resp.ok) throw new Error(await H.errorText(resp));
    if (onOpen) onOpen(resp);
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) onData(data.join("\n"));
      }
    }
  };
})(window.Halo);
