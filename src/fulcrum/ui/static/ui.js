/* Fulcrum dashboard: fetches the JSON endpoints and builds the page with DOM calls.
   Every value from the server is inserted as text (textContent / createTextNode), never as markup;
   links are built from encodeURIComponent'd references. Charts: Chart.js (static/chart.umd.min.js). */
(function () {
  "use strict";
  // log-scale axes: label only the powers of ten (Chart.js labels 1, 2, 5 of every decade, which pile up)
  function decade(v) {
    var l = Math.log10(v);
    if (!isFinite(l) || Math.abs(l - Math.round(l)) > 1e-9) return "";
    return v >= 1 ? Number(v).toLocaleString("en-US") : "1e" + Math.round(l);
  }
  var KEY = "fulcrum_api_key";
  var page = document.body.getAttribute("data-page");
  var params = new URLSearchParams(window.location.search);
  var content = document.getElementById("content");
  var charts = {};

  // ---------------------------------------------------------------- DOM helpers (text only)
  function el(tag, attrs) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined) return;
        if (k === "class") node.className = v;
        else if (k === "text") node.textContent = String(v);
        else if (k === "href") node.setAttribute("href", v);
        else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), v);
        else node.setAttribute(k, String(v));
      });
    }
    for (var i = 2; i < arguments.length; i++) add(node, arguments[i]);
    return node;
  }
  function add(node, child) {
    if (child === null || child === undefined) return node;
    if (Array.isArray(child)) { child.forEach(function (c) { add(node, c); }); return node; }
    node.appendChild(typeof child === "object" && child.nodeType ? child : document.createTextNode(String(child)));
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function link(pageName, query, text) {
    var q = Object.keys(query).map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(query[k]); }).join("&");
    return el("a", { href: pageName + (q ? "?" + q : ""), text: text });
  }
  function showError(msg) {
    var e = document.getElementById("error");
    e.textContent = msg; e.hidden = !msg;
  }

  // ---------------------------------------------------------------- formatting
  function num(v, d) { if (v === null || v === undefined || v === "") return "–"; if (typeof v !== "number") return String(v); return Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : v.toFixed(d === undefined ? 4 : d).replace(/\.?0+$/, function (m) { return m.indexOf(".") === 0 ? "" : m; }); }
  function usd(v) { if (v === null || v === undefined) return "–"; if (v === 0) return "$0"; return Math.abs(v) < 1 ? "$" + Number(v).toPrecision(4) : "$" + v.toFixed(2); }
  function size(n) { if (n === null || n === undefined) return "–"; var u = ["B", "kB", "MB", "GB"], i = 0; while (Math.abs(n) >= 1000 && i < 3) { n /= 1000; i++; } return (i ? n.toFixed(1) : n.toFixed(0)) + " " + u[i]; }
  function ms(v) { return v === null || v === undefined ? "–" : Number(v).toFixed(3) + " ms"; }
  function pct(v) { return v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%"; }
  function dur(s) { if (s === null || s === undefined) return "never"; var u = [[31557600, "y"], [86400, "d"], [3600, "h"], [60, "min"]]; for (var i = 0; i < u.length; i++) if (s >= u[i][0]) return (s / u[i][0]).toPrecision(3) + " " + u[i][1]; return Number(s).toPrecision(3) + " s"; }
  function count(v) { if (v === null || v === undefined) return "never"; var u = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]]; for (var i = 0; i < u.length; i++) if (v >= u[i][0]) return (v / u[i][0]).toPrecision(3) + u[i][1]; return Number(v).toFixed(0); }
  function json(v) { return typeof v === "string" ? v : JSON.stringify(v); }

  function card(label, value) { return el("div", { class: "card" }, el("div", { class: "label", text: label }), el("div", { class: "value", text: value })); }
  function table(headers, rows, opts) {
    opts = opts || {};
    var thead = el("thead", null, el("tr", null, headers.map(function (h, i) {
      return el("th", { class: (opts.num && opts.num[i] ? "num" : "") }, h);
    })));
    var tbody = el("tbody", null, rows.map(function (r) {
      return el("tr", null, r.map(function (c, i) { return el("td", { class: (opts.num && opts.num[i] ? "num" : "") }, c); }));
    }));
    return el("table", { class: opts.cls || null }, thead, tbody);
  }
  function kv(pairs) { return el("table", { class: "kv" }, el("tbody", null, pairs.map(function (p) { return el("tr", null, el("td", null, p[0]), el("td", null, p[1])); }))); }
  function chartBox(id) { return el("div", { class: "chartbox" }, el("canvas", { id: id, "aria-label": id })); }
  var palette = ["#2f6fde", "#e67e22", "#27ae60", "#8e44ad", "#c0392b", "#16a085", "#d35400", "#7f8c8d", "#2c3e50", "#f1c40f"];
  function color(i) { return palette[i % palette.length]; }
  function makeChart(id, config) {
    if (charts[id]) charts[id].destroy();
    var canvas = document.getElementById(id);
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
    charts[id] = new Chart(canvas, config);
    return charts[id];
  }

  // ---------------------------------------------------------------- API (with the key when one is set)
  function api(path) {
    var headers = {};
    var key = sessionStorage.getItem(KEY);
    if (key) headers["Authorization"] = "Bearer " + key;
    return fetch("api/" + path, { headers: headers, cache: "no-store" }).then(function (r) {
      return r.json().catch(function () { return { error: "HTTP " + r.status }; }).then(function (body) {
        if (r.status === 401 || r.status === 403) { askKey(body.error); throw new Error(body.error || "API key needed"); }
        if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
        return body;
      });
    });
  }
  function askKey(msg) {
    var box = document.getElementById("keybox");
    box.hidden = false;
    document.getElementById("keyerror").textContent = sessionStorage.getItem(KEY) ? (msg || "key refused") : "";
  }
  document.getElementById("keyform").addEventListener("submit", function (ev) {
    ev.preventDefault();
    sessionStorage.setItem(KEY, document.getElementById("keyinput").value.trim());
    document.getElementById("keybox").hidden = true;
    start();
  });

  // ---------------------------------------------------------------- navigation
  (function nav() {
    var ref = params.get("ref") || params.get("a");
    document.querySelectorAll("header nav a").forEach(function (a) {
      var target = a.getAttribute("data-nav");
      if (target === page) a.className = "active";
      if (a.hasAttribute("data-needs-ref")) {
        if (ref) a.setAttribute("href", target + "?ref=" + encodeURIComponent(ref));
        else if (target !== "live") a.className += " disabled";
      }
    });
  })();

  // ---------------------------------------------------------------- models
  var modelsState = { sort: params.get("sort") || "name", order: params.get("order") || "asc", q: params.get("q") || "" };
  function pageModels() {
    clear(content);
    var search = el("input", { type: "search", id: "search", placeholder: "search name, task, alias, family…", size: 40, value: modelsState.q });
    var summary = el("span", { class: "muted", id: "summary" });
    var holder = el("div", { id: "models-table" });
    add(content, [el("h1", { text: "Models" }), el("div", { class: "toolbar" }, search, summary), holder,
      el("p", { class: "muted", id: "cost-note" })]);
    var timer = null;
    search.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(function () { modelsState.q = search.value; loadModels(); }, 200); });
    return loadModels();
  }
  var modelCols = [["name", "name"], ["version", "version"], [null, "aliases"], ["task", "task"], ["metric_value", "primary metric"],
    ["size_bytes", "size"], ["training_usd", "training cost"], ["usd_per_million", "$/1M predictions"], ["created", "created"]];
  // rows drawn per request (?rows=N to change); "Show more" fetches the next ones, so 1,000 versions stay fast
  var PAGE_ROWS = Math.max(1, parseInt(params.get("rows") || "50", 10) || 50);
  function modelRow(m) {
    return el("tr", { "data-ref": m.ref },
      el("td", null, link("version", { ref: m.ref }, m.name)),
      el("td", { class: "num" }, String(m.version)),
      el("td", null, m.aliases.map(function (a) { return el("span", { class: "tag", text: a }); })),
      el("td", null, (m.task || "–") + (m.family ? " · " + m.family : "")),
      el("td", { class: "num" }, m.metric_name ? m.metric_name + " " + num(m.metric_value) : "–"),
      el("td", { class: "num" }, size(m.size_bytes)),
      el("td", { class: "num" }, usd(m.training_usd)),
      el("td", { class: "num" }, usd(m.usd_per_million)),
      el("td", null, String(m.created || "").slice(0, 19).replace("T", " ")));
  }
  function modelsQuery(offset) {
    var s = modelsState;
    return "models?sort=" + encodeURIComponent(s.sort) + "&order=" + s.order + (s.q ? "&q=" + encodeURIComponent(s.q) : "") +
      "&limit=" + PAGE_ROWS + "&offset=" + offset;
  }
  function showMore(body, shown, matched) {
    var holder = document.getElementById("more");
    clear(holder);
    document.getElementById("summary").textContent = (shown < matched ? "showing " + shown + " of " : "") + matched +
      " matching, " + modelsState.total + " versions in the registry";
    if (shown >= matched) return;
    add(holder, el("button", { type: "button", id: "more-button", text: "Show " + Math.min(PAGE_ROWS, matched - shown) + " more", onclick: function () {
      api(modelsQuery(shown)).then(function (data) {
        data.models.forEach(function (m) { body.appendChild(modelRow(m)); });
        showMore(body, shown + data.models.length, data.matched);
      }).catch(function (e) { showError(e.message); });
    } }));
  }
  function loadModels() {
    var s = modelsState;
    history.replaceState(null, "", "?" + new URLSearchParams({ q: s.q, sort: s.sort, order: s.order }).toString());
    return api(modelsQuery(0)).then(function (data) {
      s.total = data.total;
      document.getElementById("cost-note").textContent = data.cost_note;
      var head = el("tr", null, modelCols.map(function (c) {
        var arrow = c[0] === s.sort ? (s.order === "asc" ? " ▲" : " ▼") : "";
        var th = el("th", { class: c[0] ? "sortable" : null, "data-sort": c[0] }, c[1] + arrow);
        if (c[0]) th.addEventListener("click", function () {
          if (s.sort === c[0]) s.order = s.order === "asc" ? "desc" : "asc"; else { s.sort = c[0]; s.order = "asc"; }
          loadModels();
        });
        return th;
      }));
      var body = el("tbody", null, data.models.map(modelRow));
      var holder = clear(document.getElementById("models-table"));
      add(holder, [el("table", { id: "models" }, el("thead", null, head), body), el("p", { id: "more" })]);
      showMore(body, data.models.length, data.matched);
    });
  }

  // ---------------------------------------------------------------- version
  function needRef() {
    var ref = params.get("ref");
    if (!ref) { clear(content); add(content, [el("h1", { text: page }), el("p", null, "Pick a version on the ", link("./", {}, "models page"), ".")]); }
    return ref;
  }
  function pageVersion() {
    var ref = needRef(); if (!ref) return Promise.resolve();
    return api("models/" + encodeURIComponent(ref)).then(function (d) {
      clear(content);
      add(content, el("h1", null, d.ref + " ", d.aliases.map(function (a) { return el("span", { class: "tag", text: a }); })));
      var p = d.primary || {};
      add(content, el("div", { class: "cards" }, card("task", (d.task.kind || "–") + " · " + (d.task.workload || "")),
        card("model", d.family || "–"), card(p.name ? p.name + " (" + (p.split || "test") + ")" : "primary metric", num(p.value)),
        card("size", size(d.size_bytes)), card("training cost", usd(d.training_usd)), card("$/1M predictions", usd(d.usd_per_million))));
      add(content, el("p", null, link("variants", { ref: d.ref }, "variants"), " · ", link("costs", { ref: d.ref }, "costs"), " · ",
        link("live", { ref: d.ref }, "live"), " · ", link("compare", { a: d.ref }, "compare with…")));
      // lineage
      var lin = d.lineage || {};
      var linRows = [["data source", lin.data_source || "–"], ["parent", lin.parent ? link("version", { ref: lin.parent }, lin.parent) : "– (trained from data)"]];
      if (lin.variant) linRows.push(["variant", lin.variant + (lin.variant_kind ? " (" + lin.variant_kind + ")" : "")]);
      if (lin.retrain_source) linRows.push(["retrained on", lin.retrain_source + " + " + lin.feedback_rows + " feedback row(s)"]);
      linRows.push(["derived versions", lin.children && lin.children.length ? lin.children.map(function (c, i) {
        return el("span", null, i ? ", " : "", link("version", { ref: c.ref }, c.ref), c.variant ? " (" + c.variant + ")" : " (retrain)");
      }) : "none"]);
      add(content, [el("h2", { text: "Lineage" }), kv(linRows)]);
      // history
      add(content, el("div", { class: "grid2" },
        el("div", null, el("h2", { text: "Training history (per epoch)" }), d.history.length ? chartBox("history-chart") : el("p", { class: "muted", text: "no per-epoch history (not an epoch-trained model)" })),
        el("div", null, el("h2", { text: d.confusion_matrix ? "Confusion matrix (test split; rows: truth, columns: predicted)" : "Residuals" }),
          d.confusion_matrix ? confusion(d.confusion_matrix) : el("p", { class: "muted", text: d.residuals_note || "–" }))));
      if (d.history.length) historyChart("history-chart", [{ label: d.ref, history: d.history }]);
      // metrics
      var tm = d.metrics.test || {}, vm = d.metrics.validation || {};
      var mkeys = Object.keys(tm).concat(Object.keys(vm).filter(function (k) { return !(k in tm); })).filter(function (k) { return typeof (tm[k] === undefined ? vm[k] : tm[k]) === "number"; });
      add(content, [el("h2", { text: "Metrics" }), table(["metric", "test", "validation"], mkeys.map(function (k) { return [k, num(tm[k]), num(vm[k])]; }), { num: [false, true, true] })]);
      // leaderboard
      if (d.leaderboard.length) {
        var lb = d.leaderboard;
        var cols = ["family", "cv_mean", "cv_std", "status", "fit_s", "latency_ms", "folds_done"].filter(function (c) { return lb.some(function (r) { return r[c] !== undefined; }); });
        add(content, [el("h2", { text: "Candidate leaderboard" }), el("p", { class: "muted", text: (d.selection.why || "") + (d.selection.chosen ? " — chosen: " + d.selection.chosen : "") }),
          table(cols, lb.map(function (r) { return cols.map(function (c) { return typeof r[c] === "number" ? num(r[c]) : json(r[c] === undefined ? "–" : r[c]); }); }), { cls: "leaderboard" })]);
      }
      // profile
      add(content, [el("h2", { text: "Training data profile" }), table(["column", "kind", "count", "missing", "mean", "std", "min", "max", "top values"],
        d.profile.map(function (c) { return [c.column, c.kind || "–", num(c.count, 0), pct(c.missing), num(c.mean), num(c.std), num(c.min), num(c.max), c.top ? c.top.map(function (t) { return t[0] + " (" + num(t[1], 3) + ")"; }).join(", ") : ""]; }),
        { cls: "profile", num: [false, false, true, true, true, true, true, true, false] })]);
      // manifest
      add(content, el("h2", { text: "Manifest" }));
      d.manifest.forEach(function (sec) {
        add(content, el("details", null, el("summary", { text: sec.section }),
          el("table", null, el("tbody", null, sec.items.map(function (it) { return el("tr", null, el("td", null, it.key), el("td", { class: "mono" }, it.value)); })))));
      });
      add(content, [el("h2", { text: "Files" }), table(["file", "size"], d.files.map(function (f) { return [f.path, size(f.bytes)]; }), { num: [false, true] })]);
    });
  }
  function confusion(cm) {
    var max = 0; cm.matrix.forEach(function (r) { r.forEach(function (v) { max = Math.max(max, v); }); });
    var labels = cm.labels.length ? cm.labels : cm.matrix.map(function (_, i) { return String(i); });
    return el("table", { class: "cm", id: "confusion" },
      el("thead", null, el("tr", null, el("th", { text: "truth \\ predicted" }), labels.map(function (l) { return el("th", { text: l }); }))),
      el("tbody", null, cm.matrix.map(function (row, i) {
        return el("tr", null, el("th", { text: labels[i] }), row.map(function (v, j) {
          var td = el("td", { text: String(v) });
          var a = max ? v / max : 0;
          td.style.background = (i === j ? "rgba(39,174,96," : "rgba(192,57,43,") + (0.08 + 0.6 * a).toFixed(3) + ")";
          return td;
        }));
      })));
  }
  function historyChart(id, runs) {
    var datasets = [], idx = 0, maxEpoch = 0;
    runs.forEach(function (run) {
      var h = run.history;
      maxEpoch = Math.max(maxEpoch, h.length);
      var keys = {};
      h.forEach(function (row) { Object.keys(row).forEach(function (k) { if (typeof row[k] === "number" && k !== "epoch" && k !== "lr" && k !== "attempt") keys[k] = 1; }); });
      Object.keys(keys).forEach(function (k) {
        var isLoss = /loss/.test(k);
        datasets.push({ label: (runs.length > 1 ? run.label + " " : "") + k, data: h.map(function (row) { return { x: row.epoch, y: row[k] }; }),
          borderColor: color(idx), backgroundColor: color(idx), yAxisID: isLoss ? "loss" : "metric", borderDash: isLoss ? [] : [5, 3], pointRadius: 2 });
        idx++;
      });
    });
    makeChart(id, { type: "line", data: { datasets: datasets }, options: { parsing: true, scales: {
      x: { type: "linear", title: { display: true, text: "epoch" }, ticks: { precision: 0 } },
      loss: { type: "linear", position: "left", title: { display: true, text: "loss" } },
      metric: { type: "linear", position: "right", title: { display: true, text: "validation metric" }, grid: { drawOnChartArea: false } } } } });
  }

  // ---------------------------------------------------------------- variants
  function pageVariants() {
    var ref = needRef(); if (!ref) return Promise.resolve();
    var batch = params.get("batch") || "1";
    return api("models/" + encodeURIComponent(ref) + "/variants?batch=" + encodeURIComponent(batch)).then(function (d) {
      clear(content);
      var metric = (d.metric && d.metric.name) || "metric";
      add(content, [el("h1", { text: "Variants of " + d.ref }),
        el("p", { class: "muted", text: "Each graph measured side by side at batch " + d.batch + " (p50 latency of one call; " + metric + " on the held-out rows; marker area ∝ size). Green rows are on the Pareto front (no other variant is as good on " + metric + ", latency and size and better on one)." }),
        el("div", { class: "chartbox" }, el("canvas", { id: "pareto-chart" }))]);
      var maxSize = Math.max.apply(null, d.variants.map(function (v) { return v.size_bytes || 0; }).concat([1]));
      makeChart("pareto-chart", { type: "bubble", data: { datasets: d.variants.filter(function (v) { return v.latency_ms && v.metric.value !== null; }).map(function (v, i) {
        return { label: v.id + (v.pareto ? " (Pareto)" : ""), backgroundColor: color(i) + "aa", borderColor: color(i),
          data: [{ x: v.latency_ms.p50, y: v.metric.value, r: 4 + 16 * Math.sqrt((v.size_bytes || 0) / maxSize) }] };
      }) }, options: { scales: { x: { title: { display: true, text: "p50 latency (ms, batch " + d.batch + ")" } }, y: { title: { display: true, text: metric } } },
        plugins: { tooltip: { callbacks: { label: function (c) { return c.dataset.label + ": " + metric + " " + num(c.raw.y) + ", " + num(c.raw.x, 4) + " ms"; } } } } } });
      var rows = d.variants.map(function (v) {
        var ci = v.latency_ci_ms && v.latency_ci_ms.p50 ? " [" + num(v.latency_ci_ms.p50[0], 4) + ", " + num(v.latency_ci_ms.p50[1], 4) + "]" : "";
        var uci = v.usd_per_million_ci ? " [" + usd(v.usd_per_million_ci[0]) + ", " + usd(v.usd_per_million_ci[1]) + "]" : "";
        var tr = [el("span", null, v.id, v.pareto ? el("span", { class: "tag pareto", text: "Pareto" }) : null), v.kind, num(v.metric.value),
          v.metric_drop === null || v.metric_drop === undefined ? "–" : num(-v.metric_drop), (v.latency_ms ? num(v.latency_ms.p50, 4) : "–") + ci,
          v.latency_ms ? num(v.latency_ms.p99, 4) : "–", size(v.size_bytes), usd(v.usd_per_million) + uci, v.source + (v.measured_at ? " " + v.measured_at : "")];
        return tr;
      });
      add(content, [el("h2", { text: "Measured" }), table(["variant", "kind", metric, "Δ vs parent", "p50 ms [interval]", "p99 ms", "size", "$/1M [interval]", "measured"], rows,
        { cls: "variants", num: [false, false, true, true, true, true, true, true, false] })]);
      add(content, [el("h2", { text: "Aliases" }), d.aliases.length ? table(["alias", "points at", "which graph"], d.aliases.map(function (a) {
        return [el("span", { class: "tag", text: a.alias }), link("version", { ref: a.ref }, a.ref), a.variant ? (a.variant === "base" ? "this version (base)" : a.variant + " of " + d.ref) : (a.parent ? "derived from " + a.parent : "another version")];
      }), { cls: "aliases" }) : el("p", { class: "muted", text: "no aliases" })]);
    });
  }

  // ---------------------------------------------------------------- costs
  function pageCosts() {
    var ref = needRef(); if (!ref) return Promise.resolve();
    clear(content);
    var rate = el("input", { type: "text", id: "rate", value: params.get("rate") || "", placeholder: "10/s", size: 10 });
    var horizon = el("input", { type: "text", id: "horizon", value: params.get("horizon") || "12mo", size: 8 });
    var form = el("form", { class: "toolbar", id: "costform" }, el("label", { for: "rate", text: "rate" }), rate,
      el("label", { for: "horizon", text: "horizon" }), horizon, el("button", { type: "submit", text: "Update" }), el("span", { class: "muted", id: "assume" }));
    add(content, [el("h1", { text: "Costs of " + ref }), form, el("div", { id: "costbody" })]);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); params.set("rate", rate.value); params.set("horizon", horizon.value); history.replaceState(null, "", "?" + params.toString()); loadCosts(ref, rate.value, horizon.value).catch(function (e) { showError(e.message); }); });
    return loadCosts(ref, rate.value, horizon.value);
  }
  function loadCosts(ref, rate, horizon) {
    return api("models/" + encodeURIComponent(ref) + "/costs?rate=" + encodeURIComponent(rate) + "&horizon=" + encodeURIComponent(horizon)).then(function (d) {
      showError("");
      var r = d.report, a = r.assumptions, body = clear(document.getElementById("costbody"));
      document.getElementById("assume").textContent = num(a.rate_per_s, 4) + " predictions/s (" + a.rate_source + ") over " + num(a.horizon_days, 1) + " days = " + count(a.predictions_over_horizon) + " predictions";
      var rec = r.recommendation || {};
      add(body, el("div", { class: "cards" }, card("training", usd(r.training.usd)), card("recommended", r.best || "none"),
        card("lifetime (" + (r.best || r.baseline) + ")", usd((r.variants[r.best || r.baseline] || {}).lifetime_usd)),
        card("break-even", count((r.variants[r.baseline] || {}).break_even_predictions) + " predictions")));
      if (rec.note) add(body, el("p", { class: "muted", text: rec.note }));
      add(body, el("div", { class: "grid2" }, el("div", null, el("h2", { text: "Cumulative cost (training + build + inference)" }), chartBox("cost-chart")),
        el("div", null, el("h2", { text: "Energy and CO₂: training vs inference over the horizon" }), chartBox("energy-chart"))));
      var ds = [], i = 0;
      Object.keys(d.curves).forEach(function (vid) {
        var c = d.curves[vid];
        ds.push({ label: vid + (c.excluded ? " (excluded)" : ""), data: c.t_s.map(function (t, k) { return { x: t, y: c.usd[k] }; }), borderColor: color(i), backgroundColor: color(i), pointRadius: 0, borderDash: c.excluded ? [6, 4] : [] });
        if (c.break_even_s !== null && c.break_even_s !== undefined && c.break_even_s <= a.horizon_s) {
          var v = r.variants[vid];
          ds.push({ label: vid + " break-even (" + dur(c.break_even_s) + ")", type: "scatter", data: [{ x: c.break_even_s, y: 2 * (r.training.usd + (v.optimization_usd || 0)) }], pointRadius: 6, pointStyle: "circle", borderColor: color(i), backgroundColor: "#fff" });
        }
        i++;
      });
      makeChart("cost-chart", { type: "line", data: { datasets: ds }, options: { scales: { x: { type: "logarithmic", ticks: { callback: decade }, title: { display: true, text: "time serving (s, log)" } }, y: { type: "logarithmic", ticks: { callback: decade }, title: { display: true, text: "cumulative USD (log)" } } } } });
      var e = d.energy;
      makeChart("energy-chart", { type: "bar", data: { labels: ["energy (kWh)", "CO₂ (g)", "cost (USD)"], datasets: [
        { label: "training", data: [e.training.kwh, e.training.co2_g, e.training.usd], backgroundColor: color(1) },
        { label: "inference (" + e.inference.variant + ", " + count(e.inference.predictions) + " predictions)", data: [e.inference.kwh, e.inference.co2_g, e.inference.usd], backgroundColor: color(0) }] },
        options: { scales: { y: { type: "logarithmic", ticks: { callback: decade } } } } });
      add(body, [el("h2", { text: "Per variant" }), table(["variant", "$/1M", "kWh/1M", "gCO₂/1M", "break-even", "at rate", "build $", "lifetime $"], Object.keys(r.variants).map(function (vid) {
        var v = r.variants[vid];
        return [vid + (v.excluded ? " (excluded)" : ""), usd(v.usd_per_million), num(v.kwh_per_million), num(v.co2_g_per_million), count(v.break_even_predictions), dur(v.break_even_s), usd(v.optimization_usd), usd(v.lifetime_usd)];
      }), { cls: "costs", num: [false, true, true, true, true, true, true, true] }),
      el("h2", { text: "Training vs inference" }), table(["", "energy kWh", "CO₂ g", "USD"], [["training", num(e.training.kwh), num(e.training.co2_g), usd(e.training.usd)],
        ["inference over the horizon", num(e.inference.kwh), num(e.inference.co2_g), usd(e.inference.usd)]], { num: [false, true, true, true] }),
      el("p", { class: "muted", text: "energy: " + r.training.energy_method + " — " + r.training.energy_detail })]);
    });
  }

  // ---------------------------------------------------------------- live
  var livePoll = null;
  function pageLive() {
    clear(content);
    add(content, [el("h1", { id: "live-title", text: "Live" }), el("p", { class: "muted", id: "live-note" }), el("div", { class: "cards", id: "live-cards" }),
      el("div", { class: "grid2" }, el("div", null, el("h2", { text: "Requests/s and latency" }), chartBox("traffic-chart")),
        el("div", null, el("h2", { text: "Drift per input (PSI) over time" }), chartBox("drift-chart")),
        el("div", null, el("h2", { text: "Batch sizes" }), chartBox("batch-chart")),
        el("div", null, el("h2", { text: "Drift per input now" }), el("div", { id: "drift-table" })))]);
    var first = liveOnce();
    livePoll = setInterval(function () { liveOnce().catch(function (e) { showError(e.message); }); }, 2000);
    return first;
  }
  function liveOnce() {
    var ref = params.get("ref");
    return api("live" + (ref ? "?ref=" + encodeURIComponent(ref) : "")).then(function (d) {
      showError("");
      document.getElementById("live-title").textContent = "Live: " + d.ref + " (" + d.source + ")";
      document.getElementById("live-note").textContent = (d.note ? d.note + ". " : "") + (d.served.length ? "served: " + d.served.join(", ") : "");
      var rq = d.requests, mon = d.monitor, lm = d.live_metric || {}, tm = d.trained_metric || {};
      var metricName = tm.name || (lm.accuracy !== undefined ? "accuracy" : "mae");
      var liveVal = lm[metricName] !== undefined ? lm[metricName] : (lm.accuracy !== undefined ? lm.accuracy : lm.mae);
      var cards = clear(document.getElementById("live-cards"));
      add(cards, [card("requests/s (" + (rq ? rq.window : "–") + ")", rq && rq.requests.rate_per_s !== null ? num(rq.requests.rate_per_s, 2) : "–"),
        card("requests total", rq ? count(rq.requests.total) : "–"),
        card("latency p50 / p95 / p99", rq ? [rq.latency_ms.p50, rq.latency_ms.p95, rq.latency_ms.p99].map(function (v) { return v === null ? "–" : num(v, 2); }).join(" / ") + " ms" : "–"),
        card("4xx / 5xx", rq ? count(rq.requests.errors_4xx) + " / " + count(rq.requests.errors_5xx) : "–"),
        card("batch size p50", rq ? num(rq.batch_size.p50, 1) : "–"),
        card("OOD rate (window)", mon ? pct(mon.ood.rate) : "–"),
        card("drift", mon ? mon.status + (mon.drifted && mon.drifted.length ? ": " + mon.drifted.join(", ") : "") : "no monitor snapshot"),
        card("live " + metricName + " (feedback)", lm.n ? num(liveVal) + " on " + lm.n : "no feedback yet"),
        card("trained " + metricName, num(tm.value))]);
      var series = rq ? rq.series : [];
      var t0 = series.length ? series[0].t : 0;
      updateChart("traffic-chart", "line", null, [
        { label: "requests/s", yAxisID: "rate", data: series.map(function (p) { return { x: p.t - t0, y: p.rate_per_s }; }), borderColor: color(0), pointRadius: 0 },
        { label: "p50 ms", yAxisID: "ms", data: series.map(function (p) { return { x: p.t - t0, y: p.p50_ms }; }), borderColor: color(1), pointRadius: 0 },
        { label: "p99 ms", yAxisID: "ms", data: series.map(function (p) { return { x: p.t - t0, y: p.p99_ms }; }), borderColor: color(4), pointRadius: 0, borderDash: [4, 3] },
        { label: "4xx+5xx/s", yAxisID: "rate", data: series.map(function (p) { return { x: p.t - t0, y: p.errors_4xx_per_s + p.errors_5xx_per_s }; }), borderColor: color(7), pointRadius: 0 }],
        { x: { type: "linear", title: { display: true, text: "seconds since the first sample" } }, rate: { position: "left", title: { display: true, text: "per second" }, beginAtZero: true }, ms: { position: "right", title: { display: true, text: "ms" }, grid: { drawOnChartArea: false }, beginAtZero: true } });
      var cols = {};
      d.history.forEach(function (p) { Object.keys(p.psi || {}).forEach(function (c) { cols[c] = 1; }); });
      updateChart("drift-chart", "line", d.history.map(function (p) { return String(p.created || "").slice(11, 19); }), Object.keys(cols).map(function (c, i) {
        return { label: c, data: d.history.map(function (p) { return p.psi ? p.psi[c] : null; }), borderColor: color(i), backgroundColor: color(i), pointRadius: 1, spanGaps: true };
      }).concat(d.history.length ? [{ label: "OOD rate", data: d.history.map(function (p) { return p.ood_rate; }), borderColor: "#000", borderDash: [2, 2], pointRadius: 0 }] : []),
        { y: { beginAtZero: true, title: { display: true, text: "PSI / OOD share" } } });
      var hist = rq ? rq.batch_size.histogram.filter(function (b) { return b[1] > 0 || b[0] !== null; }) : [];
      updateChart("batch-chart", "bar", hist.map(function (b) { return b[0] === null ? "> max" : "≤ " + b[0]; }), [{ label: "batches (" + (rq ? rq.window : "") + ")", data: hist.map(function (b) { return b[1]; }), backgroundColor: color(2) }], { y: { beginAtZero: true } });
      var dt = clear(document.getElementById("drift-table"));
      if (mon) add(dt, table(["input", "kind", "rows", "PSI", "status"], Object.keys(mon.drift).map(function (c) { var x = mon.drift[c]; return [c, x.kind || "–", num(x.n, 0), num(x.psi), el("span", { class: "tag" + (x.status === "drift" ? " bad" : ""), text: x.status }) ]; }), { cls: "drift", num: [false, false, true, true, false] }));
      else add(dt, el("p", { class: "muted", text: "no monitor snapshot yet" }));
    });
  }
  function updateChart(id, type, labels, datasets, scales) {
    var c = charts[id];
    if (c && c.data.datasets.length === datasets.length) {
      if (labels) c.data.labels = labels;
      datasets.forEach(function (ds, i) { c.data.datasets[i].data = ds.data; c.data.datasets[i].label = ds.label; });
      c.update("none");
      return c;
    }
    return makeChart(id, { type: type, data: { labels: labels || undefined, datasets: datasets }, options: { scales: scales } });
  }

  // ---------------------------------------------------------------- compare
  function pageCompare() {
    clear(content);
    var a = el("input", { type: "text", id: "ref-a", value: params.get("a") || "", placeholder: "name@1", size: 22 });
    var b = el("input", { type: "text", id: "ref-b", value: params.get("b") || "", placeholder: "name@2", size: 22 });
    var form = el("form", { class: "toolbar", id: "compareform" }, el("label", { for: "ref-a", text: "A" }), a, el("label", { for: "ref-b", text: "B" }), b, el("button", { type: "submit", text: "Compare" }));
    add(content, [el("h1", { text: "Compare two versions" }), form, el("div", { id: "comparebody" })]);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); params.set("a", a.value); params.set("b", b.value); history.replaceState(null, "", "?" + params.toString()); loadCompare(a.value, b.value).catch(function (e) { showError(e.message); }); });
    if (a.value && b.value) return loadCompare(a.value, b.value);
    return Promise.resolve();
  }
  function fmtField(f, v) {
    if (v === null || v === undefined) return "–";
    if (/usd/.test(f)) return usd(v);
    if (f === "size_bytes") return size(v);
    if (f === "primary") return (v.name || "") + " " + num(v.value);
    if (f === "aliases") return v.join(", ") || "–";
    if (f === "task") return (v.kind || "") + " of " + (v.target || "");
    return typeof v === "number" ? num(v) : json(v);
  }
  function loadCompare(a, b) {
    return api("compare?a=" + encodeURIComponent(a) + "&b=" + encodeURIComponent(b)).then(function (d) {
      showError("");
      var body = clear(document.getElementById("comparebody"));
      var c = d.comparison;
      if (c) {
        var text = c.comparable === false ? "not comparable: " + c.reason :
          d.b + " vs " + d.a + ": " + c.verdict + " on " + c.metric + ", " + num(c.old_value) + " → " + num(c.new_value) +
          " (Δ " + num(c.delta) + ", " + Math.round(100 * c.confidence) + "% interval [" + num(c.interval[0]) + ", " + num(c.interval[1]) + "], " + c.method + ")" +
          (c.caveat ? "; caveat: " + c.caveat : "");
        add(body, el("p", { id: "verdict" }, el("strong", { text: "Paired on the held-out rows of " + d.a + ": " }), text));
        if (c.rows_desc) add(body, el("p", { class: "muted", text: c.rows_desc }));
      }
      add(body, table(["", link("version", { ref: d.a }, d.a), link("version", { ref: d.b }, d.b)], d.rows.map(function (r) { return [r.field, fmtField(r.field, r.a), fmtField(r.field, r.b)]; }), { cls: "compare", num: [false, true, true] }));
      if (d.config_diff.length) add(body, [el("h2", { text: "Training config that differs" }), table(["setting", d.a, d.b], d.config_diff.map(function (r) { return [r.field, json(r.a), json(r.b)]; }))]);
      if (d.history.a.length || d.history.b.length) {
        add(body, [el("h2", { text: "Training history" }), chartBox("compare-chart")]);
        historyChart("compare-chart", [{ label: d.a, history: d.history.a }, { label: d.b, history: d.history.b }]);
      }
    });
  }

  // ---------------------------------------------------------------- start
  var pages = { models: pageModels, version: pageVersion, variants: pageVariants, costs: pageCosts, live: pageLive, compare: pageCompare };
  function start() {
    if (livePoll) { clearInterval(livePoll); livePoll = null; }
    showError("");
    Promise.resolve().then(pages[page]).then(function () { document.body.setAttribute("data-ready", "1"); })
      .catch(function (e) { showError(e.message); document.body.setAttribute("data-ready", "error"); });
  }
  start();
})();
