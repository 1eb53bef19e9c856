// A small Markdown renderer for model output that builds DOM nodes with textContent only:
// no HTML from the text is ever parsed, so `<script>` or `<img onerror=...>` stay text.
// Handles fenced code, headings, lists, quotes, rules, paragraphs, `code`, **bold**,
// *italic* and [links](https://...) (http and https targets only).
"use strict";
(function (H) {
  const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
  const HEADING = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const RULE = /^\s{0,3}([-*_])(\s*\1){2,}\s*$/;
  const QUOTE = /^\s{0,3}>\s?/;
  const ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
  const INLINE = new RegExp([
    "(`+)([\\s\\S]*?[^`])\\1(?!`)", // code
    "\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*", // bold
    "(?<![\\w])__(?=\\S)([\\s\\S]*?\\S)__(?![\\w])",
    "\\*(?=[^\\s*])([^*]*?[^\\s*])\\*", // italic
    "(?<![\\w])_(?=[^\\s_])([^_]*?[^\\s_])_(?![\\w])",
    "\\[([^\\]\\n]+)\\]\\((https?://[^\\s)]+)\\)", // link
  ].join("|"), "g");

  function inline(parent, text) {
    const re = new RegExp(INLINE.source, "g"); // own lastIndex: inline() recurses
    let last = 0;
    let m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
      if (m[1] !== undefined) {
        parent.append(H.el("code", { text: m[2] }));
      } else if (m[3] !== undefined || m[4] !== undefined) {
        inline(parent.appendChild(H.el("strong")), m[3] !== undefined ? m[3] : m[4]);
      } else if (m[5] !== undefined || m[6] !== undefined) {
        inline(parent.appendChild(H.el("em")), m[5] !== undefined ? m[5] : m[6]);
      } else {
        const a = H.el("a", { href: m[8], rel: "noopener noreferrer nofollow", target: "_blank" });
        inline(a, m[7]);
        parent.append(a);
      }
      last = re.lastIndex;
    }
    if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
  }

  // Lines of a paragraph, joined with <br>.
  function lines(parent, rows) {
    rows.forEach((row, i) => {
      if (i) parent.append(H.el("br"));
      inline(parent, row);
    });
  }

  function codeBlock(lang, code, open) {
    const copy = H.el("button", { type: "button", class: "copy quiet", text: "copy" });
    copy.addEventListener("click", () => {
      if (navigator.clipboard) navigator.clipboard.writeText(code).catch(() => {});
    });
    const head = H.el("div", { class: "code-head" }, H.el("span", { text: lang || "code" }), copy);
    const pre = H.el("pre", { class: open ? "open" : null }, H.el("code", { text: code }));
    if (lang) pre.firstChild.dataset.lang = lang;
    return H.el("div", { class: "code" }, head, pre);
  }

  function startsBlock(line) {
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
      ITEM.test(line);
  }

  function blocks(parent, rows) {
    let i = 0;
    while (i < rows.length) {
      const line = rows[i];
      let m;
      if (!line.trim()) { i += 1; continue; }
      if ((m = FENCE.exec(line))) {
        const marker = m[1];
        const body = [];
        i += 1;
        while (i < rows.length && !rows[i].trim().startsWith(marker)) body.push(rows[i++]);
        const open = i >= rows.length; // still streaming: the fence is not closed yet
        i += 1;
        parent.append(codeBlock(m[2], body.join("\n"), open));
      } else if ((m = HEADING.exec(line))) {
        const level = Math.min(6, m[1].length + 2);
        inline(parent.appendChild(H.el("h" + level)), m[2]);
        i += 1;
      } else if (RULE.test(line)) {
        parent.append(H.el("hr"));
        i += 1;
      } else if (QUOTE.test(line)) {
        const inner = [];
        while (i < rows.length && QUOTE.test(rows[i])) inner.push(rows[i++].replace(QUOTE, ""));
        blocks(parent.appendChild(H.el("blockquote")), inner);
      } else if ((m = ITEM.exec(line))) {
        const ordered = /\d/.test(m[2]);
        const list = H.el(ordered ? "ol" : "ul");
        if (ordered && parseInt(m[2], 10) !== 1) list.setAttribute("start", parseInt(m[2], 10));
        let item = null;
        while (i < rows.length) {
          const row = rows[i];
          const im = ITEM.exec(row);
          if (im && (/\d/.test(im[2]) === ordered)) {
            item = [im[3]];
            list.append(H.el("li"));
            lines(list.lastChild, item);
          } else if (row.trim() && item && /^\s+/.test(row) && !startsBlock(row.trim())) {
            item.push(row.trim());
            list.lastChild.textContent = "";
            lines(list.lastChild, item);
          } else break;
          i += 1;
        }
        parent.append(list);
      } else {
        const para = [];
        while (i < rows.length && rows[i].trim() && (!para.length || !startsBlock(rows[i]))) {
          para.push(rows[i++]);
        }
        lines(parent.appendChild(H.el("p")), para);
      }
    }
  }

  // Replace the contents of `container` with `text` rendered as Markdown.
  H.renderMarkdown = function (container, text) {
    const fragment = document.createDocumentFragment();
    blocks(fragment, String(text).replace(/\r\n?/g, "\n").split("\n"));
    container.replaceChildren(fragment);
  };
})(window.Halo);
