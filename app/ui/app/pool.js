// The memory pool: one bar per node, split into each model's reservation in the ledger
// (the darker part is what the worker measured after load, the tick is the estimate),
// loading models (striped) and free space.
"use strict";
(function (H) {
  // The bars of /system's memory report: one per entry of `memory.nodes` (this box first,
  // then the RPC nodes of a cluster), else the one pool. A model split across nodes has a
  // per-node map `nodes` in its ledger row; a model without one sits on this box alone.
  H.poolNodes = function (report) {
    const memory = (report && report.memory) || {};
    const ledger = memory.ledger || [];
    const listed = Array.isArray(memory.nodes) && memory.nodes.length ? memory.nodes : null;
    if (!listed) return [{ name: "", budget: memory.budget_bytes || 0, ledger }];
    return listed.map((node, i) => {
      const name = String(node.node || node.name || "node " + (i + 1));
      const rows = Array.isArray(node.ledger) ? node.ledger : ledger.map((row) => {
        const split = row.nodes && typeof row.nodes === "object" ? row.nodes : null;
        let bytes = 0;
        if (row.reserved_bytes) bytes = split ? split[name] || 0 : i === 0 ? row.reserved_bytes : 0;
        return Object.assign({}, row, { reserved_bytes: bytes, split: Boolean(split) });
      });
      const problem = node.status && node.status !== "ok" ? node.error || node.status : "";
      return { name: listed.length > 1 ? name : "", budget: node.budget_bytes || 0,
        ledger: rows, problem };
    });
  };

  function segment(row, budget) {
    const reserved = row.reserved_bytes || 0;
    const pct = budget > 0 ? (100 * reserved) / budget : 0;
    const seg = H.el("div", {
      class: "seg st-" + row.status, "data-model": row.model, "data-bytes": reserved,
      title: row.model + " (" + row.status + "): reserved " + H.bytes(reserved) +
        ", estimate " + H.bytes(row.estimate_bytes) + ", measured " + H.bytes(row.measured_bytes),
    });
    seg.style.width = pct + "%";
    seg.style.setProperty("--c", H.color(row.model));
    if (row.measured_bytes && reserved && !row.split) {
      const fill = H.el("div", { class: "measured" });
      fill.style.width = Math.min(100, (100 * row.measured_bytes) / reserved) + "%";
      seg.append(fill);
    }
    if (row.estimate_bytes && reserved && !row.split) {
      const tick = H.el("div", { class: "estimate" });
      tick.style.left = Math.min(100, (100 * row.estimate_bytes) / reserved) + "%";
      seg.append(tick);
    }
    return seg;
  }

  function legendRow(row) {
    const parts = [H.bytes(row.reserved_bytes)];
    if (row.split) parts.push("its share on this node");
    else parts.push("estimate " + H.bytes(row.estimate_bytes));
    if (row.measured_bytes && !row.split) parts.push("measured " + H.bytes(row.measured_bytes));
    const swatch = H.el("span", { class: "swatch st-" + row.status });
    swatch.style.setProperty("--c", H.color(row.model));
    return H.el("li", {}, swatch, H.el("b", { text: row.model }),
      H.el("span", { class: "muted", text: " " + row.status + " · " + parts.join(" · ") }));
  }

  function nodeBar(node) {
    const rows = node.ledger.filter((r) => (r.reserved_bytes || 0) > 0);
    const used = rows.reduce((sum, r) => sum + r.reserved_bytes, 0);
    const free = Math.max(0, node.budget - used);
    const bar = H.el("div", { class: "bar", role: "img", "data-node": node.name,
      "data-budget": node.budget,
      "aria-label": "memory pool: " + H.bytes(used) + " reserved of " + H.bytes(node.budget) });
    for (const row of rows) bar.append(segment(row, node.budget));
    const freeSeg = H.el("div", { class: "seg free", "data-bytes": free });
    freeSeg.style.width = (node.budget > 0 ? (100 * free) / node.budget : 100) + "%";
    bar.append(freeSeg);
    const head = H.el("div", { class: "pool-head" },
      H.el("span", { class: "node-name", text: node.name },
        node.problem ? H.el("span", { class: "error", text: " " + node.problem }) : null),
      H.el("span", { class: "muted", text: H.bytes(used) + " reserved · " + H.bytes(free) +
        " free · budget " + H.bytes(node.budget) }));
    const legend = H.el("ul", { class: "legend" }, ...rows.map(legendRow));
    if (!rows.length) legend.append(H.el("li", { class: "muted", text: "no model loaded" }));
    return H.el("div", { class: "pool-node" }, head, bar, legend);
  }

  let drawn = "";
  H.renderPool = function (container, report) {
    const nodes = H.poolNodes(report);
    const key = JSON.stringify(nodes);
    if (key === drawn) return;
    drawn = key;
    container.replaceChildren(...nodes.map(nodeBar));
  };
})(window.Halo);
