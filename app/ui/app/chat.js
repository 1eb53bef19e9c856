// The chat playground: streams /v1/chat/completions, shows TTFT and tokens/s, reasoning in a
// collapsible block, tool calls, and a Stop button that aborts the request (the server sees
// the disconnect and frees the slot). Model text is rendered by H.renderMarkdown (DOM only).
"use strict";
(function (H) {
  const history = []; // {role, content} sent with the next request
  let controller = null;

  const $ = (id) => H.$(id);

  function bubble(role) {
    const box = H.el("div", { class: "msg " + role, "data-role": role });
    $("transcript").append(box);
    return box;
  }

  function addUser(text) {
    const box = bubble("user");
    box.append(H.el("div", { class: "content plain", text }));
    scroll();
  }

  function scroll() {
    const t = $("transcript");
    t.scrollTop = t.scrollHeight;
  }

  // One streamed answer: its DOM parts and what arrived so far.
  function answerView() {
    const box = bubble("assistant");
    const reasoning = H.el("details", { class: "reasoning", hidden: true },
      H.el("summary", { text: "Reasoning" }), H.el("div", { class: "reasoning-text" }));
    const content = H.el("div", { class: "content" });
    const tools = H.el("div", { class: "tools" });
    const meta = H.el("div", { class: "meta" });
    box.append(reasoning, content, tools, meta);
    return { box, reasoning, content, tools, meta, text: "", thought: "", calls: [],
      finish: null, usage: null, tokens: 0, drawQueued: false };
  }

  function draw(view) {
    view.drawQueued = false;
    if (view.thought) {
      view.reasoning.hidden = false;
      H.renderMarkdown(view.reasoning.lastChild, view.thought);
    }
    H.renderMarkdown(view.content, view.text);
    view.tools.replaceChildren(...view.calls.map((call) => {
      let args = call.arguments;
      try { args = JSON.stringify(JSON.parse(args), null, 2); } catch (_) { /* partial */ }
      return H.el("div", { class: "tool-call" },
        H.el("div", { class: "tool-name" }, H.el("span", { text: "tool call " }),
          H.el("code", { text: call.name || "?" })),
        H.el("pre", {}, H.el("code", { text: args })));
    }));
    scroll();
  }

  function queueDraw(view) {
    if (view.drawQueued) return;
    view.drawQueued = true;
    requestAnimationFrame(() => draw(view));
  }

  function stats(view, t0, tFirst, tEnd, state) {
    const parts = [];
    if (tFirst !== null) parts.push("TTFT " + H.seconds((tFirst - t0) / 1000));
    const tokens = view.usage ? view.usage.completion_tokens : view.tokens;
    const span = ((tEnd || performance.now()) - (tFirst || 0)) / 1000;
    if (tFirst !== null && tokens > 1 && span > 0) {
      parts.push(H.rate((tokens - 1) / span) + " tok/s");
    }
    parts.push(tokens + " tokens" + (view.usage ? "" : " so far"));
    if (view.usage) parts.push(view.usage.prompt_tokens + " prompt");
    if (view.finish) parts.push("finish: " + view.finish);
    if (state) parts.push(state);
    view.meta.replaceChildren(...parts.map((p) => H.el("span", { text: p })));
    view.meta.dataset.tps = tFirst !== null && tokens > 1 && span > 0 ? (tokens - 1) / span : "";
  }

  function onChunk(view, chunk) {
    if (chunk.error) throw new Error(chunk.error.message || JSON.stringify(chunk.error));
    if (chunk.usage) view.usage = chunk.usage;
    const choice = (chunk.choices || [])[0];
    if (!choice) return false;
    const delta = choice.delta || {};
    let produced = false;
    if (delta.content) { view.text += delta.content; produced = true; }
    const thought = delta.reasoning_content || delta.reasoning;
    if (thought) { view.thought += thought; produced = true; }
    for (const part of delta.tool_calls || []) {
      const index = part.index || 0;
      const call = view.calls[index] || (view.calls[index] = { name: "", arguments: "", id: "" });
      if (part.id) call.id = part.id;
      if (part.function && part.function.name) call.name += part.function.name;
      if (part.function && part.function.arguments) call.arguments += part.function.arguments;
      produced = true;
    }
    if (choice.finish_reason) view.finish = choice.finish_reason;
    if (produced) view.tokens += 1;
    return produced;
  }

  function requestBody(model) {
    const extraText = $("chat-extra").value.trim();
    let extra = {};
    if (extraText) {
      extra = JSON.parse(extraText);
      if (typeof extra !== "object" || Array.isArray(extra) || extra === null) {
        throw new Error("extra request JSON must be an object");
      }
    }
    const system = $("chat-system").value.trim();
    const messages = (system ? [{ role: "system", content: system }] : []).concat(history);
    const body = { model, messages, stream: true, stream_options: { include_usage: true } };
    const temperature = parseFloat($("chat-temp").value);
    const maxTokens = parseInt($("chat-max").value, 10);
    if (!Number.isNaN(temperature)) body.temperature = temperature;
    if (!Number.isNaN(maxTokens)) body.max_tokens = maxTokens;
    return Object.assign(body, extra);
  }

  function busy(on) {
    $("chat-send").disabled = on;
    $("chat-stop").disabled = !on;
  }

  async function send() {
    const text = $("chat-input").value;
    const model = $("chat-model").value;
    if (!text.trim() || controller || !model) return;
    history.push({ role: "user", content: text });
    let body;
    try {
      body = requestBody(model);
    } catch (err) {
      history.pop();
      addError("cannot send: " + err.message);
      return;
    }
    $("chat-input").value = "";
    addUser(text);
    const view = answerView();
    view.box.dataset.state = "streaming";
    controller = new AbortController();
    busy(true);
    const t0 = performance.now();
    let tFirst = null;
    let state = "";
    const ticker = setInterval(() => stats(view, t0, tFirst, null, "streaming"), 250);
    try {
      await H.sse("/v1/chat/completions", { body, signal: controller.signal, onData: (data) => {
        if (data === "[DONE]") return;
        if (onChunk(view, JSON.parse(data)) && tFirst === null) tFirst = performance.now();
        queueDraw(view);
      } });
      state = "";
    } catch (err) {
      state = err.name === "AbortError" ? "stopped" : "error";
      if (state === "error") view.box.append(H.el("div", { class: "error", text: err.message }));
    } finally {
      clearInterval(ticker);
      controller = null;
      busy(false);
    }
    draw(view);
    stats(view, t0, tFirst, performance.now(), state);
    view.box.dataset.state = state || "done";
    if (view.text || view.calls.length) {
      const reply = { role: "assistant", content: view.text };
      if (view.calls.length) {
        reply.tool_calls = view.calls.map((c, i) => ({ id: c.id || "call_" + i, type: "function",
          function: { name: c.name, arguments: c.arguments } }));
      }
      history.push(reply);
    }
  }

  function addError(message) {
    bubble("error").append(H.el("div", { class: "error", text: message }));
    scroll();
  }

  H.chatModels = function (models) {
    const select = $("chat-model");
    const ids = models.map((m) => m.id);
    const current = Array.from(select.options).map((o) => o.value);
    if (ids.join("\n") === current.join("\n")) return;
    const chosen = select.value;
    select.replaceChildren(...ids.map((id) => H.el("option", { value: id, text: id })));
    if (ids.includes(chosen)) select.value = chosen;
    else {
      const loaded = models.find((m) => m.status === "loaded" && m.chat_template);
      const chat = models.find((m) => m.chat_template);
      select.value = (loaded || chat || models[0] || { id: "" }).id;
    }
  };

  H.initChat = function () {
    $("chat-form").addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
    $("chat-input").addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); send(); }
    });
    $("chat-stop").addEventListener("click", () => { if (controller) controller.abort(); });
    $("chat-clear").addEventListener("click", () => {
      if (controller) controller.abort();
      history.length = 0;
      $("transcript").replaceChildren();
    });
  };
})(window.Halo);
