// The memory pool: one bar per node, split into each model's reservation in the ledger
// (the darker part is what the worker measured after load, the tick is the estimate),
// loading models (striped) and free space.
"use strict";
(function (H) {
  // The nodes of /system's memory report: `memory.nodes` (or the report's `nodes`) when the
  // server spans several boxes, else the one local pool. A node without a ledger of its
  // own takes each model's share from the ledger rows' per-node map, if they have one.
  H.poolNodes = function (report) {
    const memory = (report && report.memory) || {};
    const listed = Array.isArray(memory.nodes) && memory.nodes.length ? memory.nodes
      : Array.isArray(report && report.nodes) && report.nodes.length &&
        report.nodes.every((n) => n && n.budget_bytes !== undefined) ? report.nodes : null;
    if (!listed) return [{ name: "", budget: memory.budget_bytes || 0, ledger: memory.ledger || [] }];
    return listed.map((node, i) => {
      const name = String(node.name || node.node || node.id || node.address || "node " + (i + 1));
      let ledger = node.ledger;
      if (!Array.isArray(ledger)) {
        ledger = (memory.ledger || []).map((row) => {
          const share = row.nodes || row.per_node || {};
          const bytes = typeof share[name] === "object" ? share[name].reserved_bytes : share[name];
          return Object.assign({}, row, { reserved_bytes: bytes || 0 });
        });
      }
      return { name, budget: node.budget_bytes || 0, ledger };
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
    if (row.measured_bytes && reserved) {
      const fill = H.el("div", { class: "measured" });
      fill.style.width = Math.min(100, (100 * row.measured_bytes) / reserved) + "%";
      seg.append(fill);
    }
    if (row.estimate_bytes && reserved) {
      const tick = H.el("div", { class: "estimate" });
      tick.style.left = Math.min(100, (100 * row.estimate_bytes) / reserved) + "%";
      seg.append(tick);
    }
    return seg;
  }

  function legendRow(row) {
    const parts = [H.bytes(row.reserved_bytes), "estimate " + H.bytes(row.estimate_bytes)];
    if (row.measured_bytes) parts.push("measured " + H.bytes(row.measured_bytes));
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
      H.el("span", { class: "node-name", text: node.name }),
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
