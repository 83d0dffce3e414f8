// Live scatter of the Spiral tab: x_t beside x0_pred, streamed at 20+ frames/s.
//
// One persistent plotly figure draws the axes, the faint true spiral and (once a run ends or pauses)
// the final points as real, hoverable traces. While frames stream in, the points are painted on a
// <canvas> laid over the plot areas with plotly's own axis mapping (_fullLayout axes' c2p), and only
// the newest frame is painted, once per animation frame. Frames come from Python as
// {step, total, t, xt, x0, done, curve?}, with the points as base64 little-endian float32.
(function () {
  "use strict";
  const PANELS = [
    { x: "xaxis", y: "yaxis", key: "xt", colour: "rgba(31,119,180,0.7)", trace: 2 },
    { x: "xaxis2", y: "yaxis2", key: "x0", colour: "rgba(214,39,40,0.7)", trace: 3 },
  ];
  const PAUSE_MS = 400; // no new frame for this long: hand the points to plotly

  function decode(b64) {
    const bin = atob(b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  function split(xy) {
    const n = xy.length / 2, x = new Array(n), y = new Array(n);
    for (let i = 0; i < n; i++) { x[i] = xy[2 * i]; y[i] = xy[2 * i + 1]; }
    return [x, y];
  }

  const CONFIG = { responsive: true, displaylogo: false }; // every (re)render: react resets what it is not given
  const NARROW_PX = 600; // narrower than this (a phone): x_t above x0_pred instead of beside it

  function axis(domain, range, anchor, extra) {
    return Object.assign({ domain, range, anchor, zeroline: false, showgrid: true, gridcolor: "#eee" }, extra);
  }

  function layout(narrow) {
    const title = (text, x, y) => ({ text, x, y, xref: "paper", yref: "paper", xanchor: "center",
                                     yanchor: "bottom", showarrow: false, font: { size: 14 } });
    // beside: left and right halves, 430 px high; stacked: top and bottom halves, each about square
    const [d1, d2, e1, e2] = narrow ? [[0, 1], [0, 1], [0.55, 1], [0, 0.45]] : [[0, 0.48], [0.52, 1], [0, 1], [0, 1]];
    return {
      margin: { l: 40, r: 10, t: 34, b: 30 }, height: narrow ? 760 : 430, showlegend: false, plot_bgcolor: "white",
      xaxis: axis(d1, [-3, 3], "y"), yaxis: axis(e1, [-3, 3], "x", { scaleanchor: "x" }),
      xaxis2: axis(d2, [-1.6, 1.6], "y2"), yaxis2: axis(e2, [-1.6, 1.6], "x2", { scaleanchor: "x2" }),
      annotations: [title("x_t (noisy sample)", (d1[0] + d1[1]) / 2, e1[1]),
                    title(narrow ? "x0_pred (the model's current guess)"
                                 : "x0_pred (model's current guess of the clean data)", (d2[0] + d2[1]) / 2,
                          e2[1] + (narrow ? 0.01 : 0))],
      uirevision: "keep",
    };
  }

  function traces(curve, xt, x0) {
    const [cx, cy] = curve ? split(curve) : [[], []];
    const line = (xa, ya) => ({ x: cx, y: cy, xaxis: xa, yaxis: ya, mode: "lines", hoverinfo: "skip",
                                line: { color: "rgba(128,128,128,0.28)", width: 6 }, type: "scatter" });
    const dots = (xy, xa, ya, p) => {
      const [x, y] = xy ? split(xy) : [[], []];
      return { x, y, xaxis: xa, yaxis: ya, mode: "markers", type: "scatter", name: p.key,
               marker: { size: 3.5, color: p.colour }, hovertemplate: "(%{x:.3f}, %{y:.3f})<extra></extra>" };
    };
    return [line("x", "y"), line("x2", "y2"), dots(xt, "x", "y", PANELS[0]), dots(x0, "x2", "y2", PANELS[1])];
  }

  function mount(element, props, watch) {
    const box = element.querySelector(".live-scatter");
    const plot = box.querySelector(".live-plot");
    const canvas = box.querySelector("canvas");
    const narrowBox = () => box.clientWidth > 0 && box.clientWidth < NARROW_PX;
    const s = { narrow: narrowBox(), curve: null, pending: null, last: null, raf: 0, timer: 0, handed: true,
                painted: 0, ready: false };
    box.liveStats = s;
    let P = null; // the plotly that drew this plot: Gradio's gr.Plot loads its own (older) one into window.Plotly
                  // when a tab with a plot opens, and one plotly cannot re-render a figure that another built

    function paint() {
      s.raf = 0;
      const f = s.pending, fl = plot._fullLayout;
      if (!f || !fl || !fl.xaxis2) return;
      s.pending = null;
      const dpr = window.devicePixelRatio || 1, w = plot.clientWidth, h = plot.clientHeight;
      if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
        canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
        canvas.style.width = w + "px"; canvas.style.height = h + "px";
      }
      const ctx = canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);
      for (const p of PANELS) {
        const xa = fl[p.x], ya = fl[p.y], xy = f.points[p.key];
        ctx.save();
        ctx.beginPath(); ctx.rect(xa._offset, ya._offset, xa._length, ya._length); ctx.clip();
        ctx.fillStyle = p.colour;
        for (let i = 0; i < xy.length; i += 2) {
          ctx.fillRect(xa._offset + xa.c2p(xy[i]) - 1.5, ya._offset + ya.c2p(xy[i + 1]) - 1.5, 3, 3);
        }
        ctx.restore();
      }
      s.painted += 1;
      box.dataset.painted = String(s.painted);
      box.dataset.step = String(f.step);
    }

    function handOver() {
      s.timer = 0;
      const f = s.last;
      if (!f || s.handed) return;
      s.handed = true;
      P.react(plot, traces(s.curve, f.points.xt, f.points.x0), layout(s.narrow), CONFIG).then(() => {
        canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
        box.dataset.final = String(f.step);
      });
    }

    function show(value) {
      if (!value || !value.xt || !s.ready) return;
      if (value.curve) s.curve = decode(value.curve);
      const f = { step: value.step, done: value.done, points: { xt: decode(value.xt), x0: decode(value.x0) } };
      s.last = f;
      clearTimeout(s.timer);
      if (value.done) { s.handed = false; handOver(); return; }
      if (s.handed) { // a new stream: empty plotly's point traces, paint on the canvas from now on
        s.handed = false;
        box.dataset.final = "";
        P.restyle(plot, { x: [[], []], y: [[], []] }, [2, 3]);
      }
      s.pending = f;
      if (!s.raf) s.raf = requestAnimationFrame(paint);
      s.timer = setTimeout(handOver, PAUSE_MS);
    }

    function start() {
      if (!window.Plotly) { setTimeout(start, 50); return; }
      P = window.Plotly;
      const v = props.value;
      if (v && v.curve) s.curve = decode(v.curve);
      P.newPlot(plot, traces(s.curve, null, null), layout(s.narrow), CONFIG)
        .then(() => { s.ready = true; box.dataset.ready = "1"; show(props.value); });
      new ResizeObserver(() => {
        if (!s.ready || !plot.clientWidth) return;
        if (narrowBox() === s.narrow) { P.Plots.resize(plot); return; }
        s.narrow = narrowBox(); // a phone turned, a window resized across NARROW_PX: beside <-> stacked
        P.react(plot, plot.data, layout(s.narrow), CONFIG).then(() => P.Plots.resize(plot));
      }).observe(box);
    }

    watch("value", () => show(props.value));
    start();
  }

  window.LiveScatter = { mount };
})();
