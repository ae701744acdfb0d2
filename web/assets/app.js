// Roentgen dashboard: small, dependency-free progressive enhancement of server-rendered pages.
(function () {
  "use strict";
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var params = function () { return new URLSearchParams(location.search); };
  function setParam(key, value, push) {
    var p = params();
    if (value === null) p.delete(key); else p.set(key, value);
    var url = location.pathname + "?" + p.toString();
    if (url === location.pathname + location.search) return;
    (push ? history.pushState : history.replaceState).call(history, { key: key, value: value }, "", url);
  }

  // Window picker: custom start/end inputs only for "custom"; presets apply at once.
  var windowSelect = $("#window");
  if (windowSelect) {
    windowSelect.addEventListener("change", function () {
      var custom = $(".custom");
      if (custom) custom.hidden = windowSelect.value !== "custom";
      if (windowSelect.value !== "custom") windowSelect.form.submit();
    });
  }

  // Group picker applies at once.
  var groupSelect = $("#group");
  if (groupSelect) groupSelect.addEventListener("change", function () { groupSelect.form.submit(); });

  // Response-time histograms (traces, analytics): drag across bars to narrow the filter to
  // that range.
  $$("#trace-histogram, #analytics-histogram").forEach(function (histo) {
    var from = null;
    histo.addEventListener("mousedown", function (ev) {
      var a = ev.target.closest("a[data-lo]");
      if (a) { from = a; ev.preventDefault(); }
    });
    histo.addEventListener("mouseup", function (ev) {
      var to = ev.target.closest("a[data-lo]");
      if (!from || !to || to === from) { from = null; return; }
      ev.preventDefault();
      var lo = Math.min(+from.dataset.lo, +to.dataset.lo), hi = Math.max(+from.dataset.hi, +to.dataset.hi);
      var range = "responsetime >= " + lo + " AND responsetime <= " + hi;
      var f = histo.dataset.filter;
      from = null;
      location.href = histo.dataset.base + "&filter=" + encodeURIComponent(f ? "(" + f + ") AND " + range : range);
    });
  });

  // ---- Service map ----
  var map = $("#map");
  var panel = $("#panel");
  function select(id, push) {
    $$(".selected", map).forEach(function (e) { e.classList.remove("selected"); });
    $$(".panel-item", panel).forEach(function (e) { e.hidden = true; });
    var item = id && $("#panel-" + id);
    if (!item) { panel.hidden = true; setParam("select", null, push); return; }
    var target = document.getElementById(id);
    if (target) target.classList.add("selected");
    item.hidden = false;
    panel.hidden = false;
    setParam("select", id, push);
  }
  function focusService(text) {
    var q = text.trim().toLowerCase();
    map.classList.toggle("focusing", q !== "");
    if (!q) { $$(".dim", map).forEach(function (e) { e.classList.remove("dim"); }); return; }
    var nodes = $$(".node", map);
    var hit = nodes.filter(function (n) { return n.dataset.name.toLowerCase() === q; })[0] ||
      nodes.filter(function (n) { return n.dataset.name.toLowerCase().indexOf(q) >= 0; })[0];
    var keep = {};
    if (hit) {
      keep[hit.dataset.index] = true;
      (hit.dataset.neighbours || "").split(" ").forEach(function (i) { if (i) keep[i] = true; });
    }
    nodes.forEach(function (n) { n.classList.toggle("dim", !keep[n.dataset.index]); });
    $$(".edge", map).forEach(function (e) {
      var touches = hit && (e.dataset.from === hit.dataset.index || e.dataset.to === hit.dataset.index);
      e.classList.toggle("dim", !touches);
    });
    if (hit && hit.scrollIntoView) hit.scrollIntoView({ block: "nearest", inline: "nearest" });
  }
  if (map && panel) {
    map.addEventListener("click", function (ev) {
      var g = ev.target.closest(".node, .edge");
      select(g ? g.dataset.panel : null, true);
    });
    map.addEventListener("keydown", function (ev) {
      var g = ev.target.closest && ev.target.closest(".node");
      if (g && (ev.key === "Enter" || ev.key === " ")) { ev.preventDefault(); select(g.dataset.panel, true); }
    });
    $(".close", panel).addEventListener("click", function () { select(null, true); });
    var search = $("#map-search");
    if (search) {
      search.value = params().get("focus") || "";
      search.addEventListener("input", function () { focusService(search.value); setParam("focus", search.value || null, false); });
      search.addEventListener("keydown", function (ev) { if (ev.key === "Escape") { search.value = ""; focusService(""); setParam("focus", null, false); } });
      if (search.value) focusService(search.value);
    }
    var initial = params().get("select");
    if (initial) select(initial, false);
    window.addEventListener("popstate", function () { select(params().get("select"), false); });
  }

  // ---- Trace timeline ----
  var timeline = $("#timeline");
  if (!timeline) return;
  var rows = $$(".row", timeline);
  var byId = {};
  var kids = {};
  rows.forEach(function (r) {
    // Depth and bar come as data attributes, set here through the CSSOM: the page's
    // Content-Security-Policy (style-src 'self') refuses inline style="" attributes.
    r.style.setProperty("--d", r.dataset.d);
    r.style.setProperty("--l", r.dataset.l + "%");
    r.style.setProperty("--w", r.dataset.w + "%");
    r.dataset.id = r.id.slice(2);
    byId[r.dataset.id] = r;
    var p = r.dataset.p;
    if (p) (kids[p] = kids[p] || []).push(r);
  });
  function showChildren(r) {
    (kids[r.dataset.id] || []).forEach(function (c) {
      c.hidden = false;
      if (!c.classList.contains("closed")) showChildren(c);
    });
  }
  function hideChildren(r) {
    (kids[r.dataset.id] || []).forEach(function (c) { c.hidden = true; hideChildren(c); });
  }
  function toggle(r, open) {
    if (!r.dataset.k) return;
    var isOpen = !r.classList.contains("closed");
    if (open === undefined) open = !isOpen;
    if (open === isOpen) return;
    r.classList.toggle("closed", !open);
    if (open) showChildren(r); else hideChildren(r);
  }
  function expandToLevel(n) {
    rows.forEach(function (r) {
      var d = +r.dataset.d;
      r.hidden = d > n;
      r.classList.toggle("closed", !!r.dataset.k && d >= n);
    });
  }
  function reveal(r) {
    var p = r.dataset.p && byId[r.dataset.p];
    var chain = [];
    while (p) { chain.unshift(p); p = p.dataset.p && byId[p.dataset.p]; }
    chain.forEach(function (a) { toggle(a, true); });
  }
  var current = null;
  var pending = null;
  function loadDetails(r) {
    var box = $("#details");
    var url = "/traces/" + encodeURIComponent(timeline.dataset.trace) + "/rows/" + encodeURIComponent(r.dataset.id);
    box.setAttribute("aria-busy", "true");
    fetch(url).then(function (res) { return res.text(); }).then(function (html) {
      if (current !== r) return;
      box.innerHTML = html;
      box.dataset.row = r.dataset.id;
      box.removeAttribute("aria-busy");
    });
  }
  function selectRow(r, push, soon) {
    if (!r) return;
    if (current) current.classList.remove("sel");
    current = r;
    reveal(r);
    r.classList.add("sel");
    if (r.scrollIntoView) r.scrollIntoView({ block: "nearest" });
    setParam("row", r.dataset.id, push);
    clearTimeout(pending);
    if (soon) pending = setTimeout(function () { loadDetails(r); }, 150); else loadDetails(r);
  }
  function visible() { return rows.filter(function (r) { return !r.hidden; }); }
  timeline.addEventListener("click", function (ev) {
    var level = ev.target.closest("[data-level]");
    if (level) { expandToLevel(+level.dataset.level); return; }
    var r = ev.target.closest(".row");
    if (!r) return;
    if (ev.target.closest(".tw")) { toggle(r); return; }
    selectRow(r, true, false);
  });
  timeline.addEventListener("keydown", function (ev) {
    var list = visible();
    var i = current ? list.indexOf(current) : -1;
    switch (ev.key) {
      case "ArrowDown": selectRow(list[Math.min(i + 1, list.length - 1)], false, true); break;
      case "ArrowUp": selectRow(list[Math.max(i - 1, 0)], false, true); break;
      case "Home": selectRow(list[0], false, true); break;
      case "End": selectRow(list[list.length - 1], false, true); break;
      case "ArrowRight": if (current) toggle(current, true); break;
      case "ArrowLeft":
        if (!current) break;
        if (current.dataset.k && !current.classList.contains("closed")) toggle(current, false);
        else if (current.dataset.p && byId[current.dataset.p]) selectRow(byId[current.dataset.p], false, true);
        break;
      case "Enter": if (current) selectRow(current, true, false); break;
      default: return;
    }
    ev.preventDefault();
  });
  function fromUrl() {
    var id = params().get("row");
    if (id && byId[id]) selectRow(byId[id], false, false);
  }
  window.addEventListener("popstate", fromUrl);
  fromUrl();
})();
