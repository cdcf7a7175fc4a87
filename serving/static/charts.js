/* Encaisse charts: read each chart's data from a JSON <script> and draw it with uPlot (served from /static). */
(function () {
  "use strict";
  var lang = document.documentElement.lang || "en";
  var locale = lang === "fr" ? "fr-FR" : "en-GB";
  var money = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
  var compact = new Intl.NumberFormat(locale, { notation: "compact", maximumFractionDigits: 1 });
  var dayFmt = new Intl.DateTimeFormat(locale, { day: "numeric", month: "short", year: "2-digit", timeZone: "UTC" });

  function data(el) {
    var src = document.getElementById(el.getAttribute("data-source"));
    return JSON.parse(src.textContent);
  }
  function width(el) { return Math.max(320, el.clientWidth || 600); }
  function dateAxis() {
    return { space: 80, values: function (u, splits) { return splits.map(function (s) { return dayFmt.format(new Date(s * 1000)); }); } };
  }
  function moneyAxis() {
    return { size: 60, values: function (u, splits) { return splits.map(function (v) { return compact.format(v); }); } };
  }
  var bars = uPlot.paths && uPlot.paths.bars;

  var draw = {
    history: function (el, d) {
      var opts = {
        width: width(el), height: 280, tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
        legend: { show: false }, cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true } },
        axes: [dateAxis(), { label: d.label, size: 56 }],
        series: [{}, { label: d.label, stroke: "#1f5fbf", paths: function () { return null; },
                       points: { show: true, size: 6, fill: "#1f5fbf", stroke: "#1f5fbf" } }]
      };
      return new uPlot(opts, [d.x, d.y], el);
    },
    fan: function (el, d) {
      var opts = {
        width: width(el), height: 340, tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
        legend: { show: true }, scales: { x: { time: true } },
        axes: [dateAxis(), moneyAxis()],
        series: [
          { label: d.labels.period },
          { label: d.labels.low, stroke: "rgba(31,95,191,0.35)", width: 1, value: function (u, v) { return v == null ? "" : money.format(v); } },
          { label: d.labels.high, stroke: "rgba(31,95,191,0.35)", width: 1, value: function (u, v) { return v == null ? "" : money.format(v); } },
          { label: d.labels.expected, stroke: "#1f5fbf", width: 2.5, value: function (u, v) { return v == null ? "" : money.format(v); } },
          { label: d.labels.due, stroke: "rgba(102,112,133,0.9)", fill: "rgba(102,112,133,0.35)", width: 1,
            paths: bars ? bars({ size: [0.35, 40], align: 1 }) : undefined,
            value: function (u, v) { return v == null ? "" : money.format(v); } }
        ],
        bands: [{ series: [2, 1], fill: "rgba(31,95,191,0.18)" }]
      };
      return new uPlot(opts, [d.x, d.low, d.high, d.expected, d.due], el);
    },
    uplift: function (el, d) {
      var pts = function (u, v) { return v == null ? "" : (v > 0 ? "+" : "") + v.toFixed(1); };
      var opts = {
        width: width(el), height: 220, tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
        legend: { show: true }, scales: { x: { time: true } },
        axes: [dateAxis(), { size: 48, values: function (u, splits) { return splits.map(function (v) { return (v > 0 ? "+" : "") + v; }); } }],
        series: [
          { label: d.labels.period },
          { label: d.labels.low, stroke: "rgba(31,95,191,0.35)", width: 1, value: pts },
          { label: d.labels.high, stroke: "rgba(31,95,191,0.35)", width: 1, value: pts },
          { label: d.labels.uplift, stroke: "#1f5fbf", width: 2, value: pts, points: { show: true, size: 6, fill: "#1f5fbf" } },
          { label: "0", stroke: "rgba(102,112,133,0.9)", width: 1, dash: [4, 4], points: { show: false } }
        ],
        bands: [{ series: [2, 1], fill: "rgba(31,95,191,0.18)" }]
      };
      return new uPlot(opts, [d.x, d.low, d.high, d.uplift, d.x.map(function () { return 0; })], el);
    },
    aging: function (el, d) {
      var xs = d.labels.map(function (_, i) { return i; });
      var opts = {
        width: width(el), height: 280, legend: { show: false }, cursor: { show: false },
        scales: { x: { time: false, range: [-0.6, xs.length - 0.4] } },
        axes: [{ splits: function () { return xs; }, values: function (u, splits) { return splits.map(function (i) { return d.labels[i] || ""; }); } },
               moneyAxis()],
        series: [{}, { label: d.label, stroke: "#1f5fbf", fill: "rgba(31,95,191,0.55)",
                       paths: bars ? bars({ size: [0.6, 120] }) : undefined, points: { show: false } }]
      };
      return new uPlot(opts, [xs, d.amounts], el);
    }
  };

  function init() {
    var els = document.querySelectorAll("[data-chart]");
    Array.prototype.forEach.call(els, function (el) {
      var kind = el.getAttribute("data-chart");
      if (!draw[kind]) { return; }
      el.uplot = draw[kind](el, data(el));
      el.setAttribute("data-drawn", "true");
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
