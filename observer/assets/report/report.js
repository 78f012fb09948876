// observer HTML report: feeds the embedded Apache ECharts with the report's
// aggregates (computed by observer), and sorts/filters the connection table.
// Everything is in this file: nothing is fetched.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var colours = data.colours;
  var charts = [];

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function colour(v) { return colours[v] || "#8a8f98"; }
  function human(b) {
    var u = ["B", "KB", "MB", "GB", "TB"], i = 0;
    while (b >= 1000 && i < u.length - 1) { b /= 1000; i++; }
    return (i ? b.toFixed(1) : Math.round(b)) + " " + u[i];
  }
  function verdictLines(verdicts) {
    return Object.keys(verdicts).map(function (v) {
      return '<span style="color:' + colour(v) + '">●</span> ' + esc(v) + ": " + verdicts[v];
    }).join("<br>");
  }
  var kindColour = {
    workload: "#0f6cbd", vnet: "#2b88d8", subnet: "#5aa0e6", backend: "#4f9fd6",
    "private-endpoint": "#2ca58d", peering: "#6c8ebf", dns: "#7b8794", appliance: "#a05ec9",
    gateway: "#c97b2a", onprem: "#8d6e63", internet: "#d9534f", azure: "#1e88e5",
    dropped: "#555", unknown: "#999"
  };
  var kindSymbol = {
    workload: "roundRect", vnet: "diamond", gateway: "diamond", appliance: "diamond",
    internet: "diamond", peering: "diamond", dropped: "triangle", onprem: "rect"
  };

  function sankeyOption(text) {
    var labels = {};
    data.sankey.nodes.forEach(function (n) { labels[n.id] = n.label; });
    return {
      animation: false,
      backgroundColor: "transparent",
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          if (p.dataType === "edge") {
            return esc(labels[p.data.source]) + " → " + esc(labels[p.data.target]) + "<br>" +
              p.data.connections + " connection(s)" + (p.data.mismatch ? " <b>(path differs)</b>" : "") +
              "<br>" + verdictLines(p.data.verdicts);
          }
          return esc(labels[p.data.name]);
        }
      },
      title: data.sankey.nodes.length ? undefined : { text: "No connection", left: "center", top: "middle", textStyle: { color: text } },
      series: [{
        type: "sankey", left: 8, right: 150, top: 24, bottom: 8, nodeGap: 10, nodeWidth: 14,
        layoutIterations: 64, emphasis: { focus: "adjacency" },
        data: data.sankey.nodes.map(function (n) {
          return { name: n.id, depth: n.column, itemStyle: { color: ["#5b6b82", "#0f6cbd", "#7a4fb5"][n.column] } };
        }),
        links: data.sankey.links.map(function (l) {
          return {
            source: l.source, target: l.target, value: l.connections, connections: l.connections,
            verdicts: l.verdicts, mismatch: l.mismatch,
            lineStyle: { color: colour(l.verdict), opacity: l.mismatch || l.verdict !== "ok" ? 0.7 : 0.3 }
          };
        }),
        label: { color: text, formatter: function (p) { return labels[p.name]; } }
      }],
      graphic: [
        { type: "text", left: 8, top: 0, style: { text: "what it is", fill: text, font: "600 12px sans-serif" } },
        { type: "text", left: "center", top: 0, style: { text: "expected next hop", fill: text, font: "600 12px sans-serif" } },
        { type: "text", right: 8, top: 0, style: { text: "observed path", fill: text, font: "600 12px sans-serif" } }
      ]
    };
  }

  function topologyOption(text, panel) {
    var byId = {};
    data.graph.nodes.forEach(function (n) { byId[n.id] = n; });
    return {
      animation: false,
      backgroundColor: "transparent",
      tooltip: {
        trigger: "item",
        formatter: function (p) {
          if (p.dataType === "edge") {
            return esc(byId[p.data.source].label) + " → " + esc(byId[p.data.target].label) + "<br>" +
              p.data.connections + " connection(s)<br>" + verdictLines(p.data.verdicts);
          }
          var n = byId[p.data.id];
          return "<b>" + esc(n.label) + "</b> (" + esc(n.kind) + ")" + (n.detail ? "<br>" + esc(n.detail) : "");
        }
      },
      series: [{
        type: "graph", layout: "none", roam: true, left: 60, right: 230, top: 30, bottom: 30,
        edgeSymbol: ["none", "arrow"], edgeSymbolSize: 9, emphasis: { focus: "adjacency" },
        label: { show: true, color: text, position: "right", formatter: function (p) { return byId[p.data.id].label; } },
        data: data.graph.nodes.map(function (n) {
          return {
            id: n.id, name: n.id, x: n.x, y: n.y,
            symbol: kindSymbol[n.kind] || "circle",
            symbolSize: n.kind === "workload" ? 30 : 22,
            itemStyle: { color: kindColour[n.kind] || "#999" },
            label: {
              position: n.x === 0 ? "bottom" : (n.x > 400 ? "right" : "top"),
              backgroundColor: panel, padding: [1, 4], borderRadius: 3
            }
          };
        }),
        links: data.graph.links.map(function (l) {
          return {
            source: l.source, target: l.target, connections: l.connections, verdicts: l.verdicts,
            lineStyle: {
              color: colour(l.verdict), width: 1.5 + Math.log2(1 + l.connections) * 1.6,
              opacity: 0.85, curveness: 0.08, type: l.verdict === "ok" ? "solid" : "solid"
            }
          };
        })
      }],
      graphic: [
        { type: "text", left: 8, top: 0, style: { text: "workload", fill: text, font: "600 12px sans-serif" } },
        { type: "text", left: "center", top: 0, style: { text: "path taken", fill: text, font: "600 12px sans-serif" } },
        { type: "text", right: 8, top: 0, style: { text: "destination", fill: text, font: "600 12px sans-serif" } }
      ]
    };
  }

  function timeOption(text) {
    var t = data.timeline;
    var series = Object.keys(t.active).sort().map(function (v) {
      return {
        name: v, type: "bar", stack: "connections", barMaxWidth: 28,
        itemStyle: { color: colour(v) },
        data: t.active[v].map(function (n, i) { return [t.buckets_ms[i], n]; })
      };
    });
    series.push({
      name: "bytes", type: "line", yAxisIndex: 1, showSymbol: false, lineStyle: { width: 2 },
      itemStyle: { color: "#0f6cbd" },
      data: t.bytes.map(function (b, i) { return [t.buckets_ms[i], b]; })
    });
    return {
      animation: false,
      backgroundColor: "transparent",
      title: t.buckets_ms.length ? undefined : { text: "No traffic", left: "center", top: "middle", textStyle: { color: text } },
      tooltip: { trigger: "axis", valueFormatter: function (v) { return typeof v === "number" && v > 1000 ? human(v) : v; } },
      legend: { top: 0, textStyle: { color: text } },
      grid: { left: 50, right: 70, top: 40, bottom: 30 },
      xAxis: { type: "time" },
      yAxis: [
        { type: "value", name: "connections", minInterval: 1 },
        { type: "value", name: "bytes", axisLabel: { formatter: human } }
      ],
      series: series
    };
  }

  var builders = [
    ["chart-sankey", sankeyOption],
    ["chart-topology", topologyOption],
    ["chart-time", timeOption]
  ];

  function draw(dark) {
    charts.forEach(function (c) { c.dispose(); });
    charts = [];
    var text = dark ? "#e4e8ee" : "#1c2330";
    var panel = dark ? "rgba(29,33,40,0.85)" : "rgba(255,255,255,0.85)";
    builders.forEach(function (b) {
      var el = document.getElementById(b[0]);
      var chart = echarts.init(el, dark ? "dark" : null, { renderer: "svg" });
      chart.setOption(b[1](text, panel));
      charts.push(chart);
    });
  }

  var scheme = window.matchMedia("(prefers-color-scheme: dark)");
  draw(scheme.matches);
  if (scheme.addEventListener) {
    scheme.addEventListener("change", function (e) { draw(e.matches); });
  }
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  // Paper is light and narrower: redraw light at the printable width
  // (A4 less margins), back after.
  function forPrint() {
    draw(false);
    charts.forEach(function (c) { c.resize({ width: 680 }); });
  }
  window.addEventListener("beforeprint", forPrint);
  window.addEventListener("afterprint", function () { draw(scheme.matches); });
  var print = window.matchMedia("print");
  if (print.addEventListener) {
    print.addEventListener("change", function (e) { if (e.matches) { forPrint(); } });
  }

  // The table: click a heading to sort, type or pick a verdict to filter.
  var table = document.getElementById("table");
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, index) {
    th.tabIndex = 0;
    function sort() {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var numeric = th.dataset.type === "num" || index === 0;
      function key(row) {
        var cell = row.cells[index];
        var v = cell.dataset.v !== undefined ? cell.dataset.v : cell.textContent;
        return numeric ? Number(v) : v.toLowerCase();
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
  });
  var filter = document.getElementById("filter");
  var verdict = document.getElementById("verdict-filter");
  var shown = document.getElementById("shown");
  function apply() {
    var needle = filter.value.trim().toLowerCase();
    var only = verdict.value;
    var count = 0;
    rows.forEach(function (r) {
      var visible = (!only || r.dataset.verdict === only) &&
        (!needle || r.textContent.toLowerCase().indexOf(needle) >= 0);
      r.hidden = !visible;
      if (visible) { count++; }
    });
    shown.textContent = count + " shown";
  }
  filter.addEventListener("input", apply);
  verdict.addEventListener("change", apply);

  window.__observerReport = { charts: charts.length, ready: true };
})();
