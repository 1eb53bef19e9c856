// Starts the page: the header from /system, then one /events stream that redraws the pool,
// the models table, the live figures and the playground's model list.
"use strict";
(function (H) {
  const RETRY_MS = 1000;

  function header(report) {
    const probe = report.probe || {};
    const choice = probe.choice || {};
    const devices = ((probe.llama || {}).devices || []).map((d) => d.description || d.name);
    const parts = [choice.backend ? "backend " + choice.backend : null,
      devices.length ? devices.join(", ") : null,
      probe.facts && probe.facts.strix_halo ? "Strix Halo" : null];
    const hw = H.$("hw");
    hw.replaceChildren(...parts.filter(Boolean).map((p) => H.el("span", { text: p })));
    hw.title = (choice.reasons || []).join("; ");
  }

  function connection(state, text) {
    const badge = H.$("conn");
    badge.dataset.state = state;
    H.setText(badge, text);
  }

  function apply(snapshot) {
    H.last = snapshot;
    H.events += 1;
    H.assignColors(snapshot.models.map((m) => m.id));
    H.renderPool(H.$("pool"), snapshot.system);
    H.renderModels(H.$("models"), snapshot.models);
    H.renderLive(snapshot);
    H.chatModels(snapshot.models);
  }

  async function follow() {
    for (;;) {
      try {
        await H.sse("/events", {
          onOpen: () => connection("on", "live"),
          onData: (data) => apply(JSON.parse(data)),
        });
      } catch (err) {
        connection("off", "disconnected");
      }
      connection("off", "reconnecting");
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  H.start = async function (config, key) {
    H.setKey(key);
    H.config = config;
    H.events = 0; // snapshots received (the browser tests read it)
    H.$("app").hidden = false;
    H.initModels(config);
    H.initChat();
    try {
      header(await H.api("/system"));
    } catch (err) {
      H.setText(H.$("hw"), "system report unavailable: " + err.message);
    }
    follow();
  };
})(window.Halo);
