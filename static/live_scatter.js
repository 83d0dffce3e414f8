// Live scatter of the Spiral tab: x_t beside x0_pred, streamed at 20+ frames/s.
//
// One persistent plotly figure draws the axes, the faint true spiral and (once a run ends or pauses)
// the final points as real, hoverable traces. While frames stream in, the points are painted on a
// <canvas> laid over the plot areas with plotly's own axis mapping (_fullLayout axes' c2p), and only
// the newest frame is painted, once per animation frame. Frames come from Python as
// {step, total, t, xt, x0, done, curve?, cloud?, caption?}, with the points as base64 little-endian float32; a
// caption (the samplers side by side: each plot's sampler, and its distance and seconds once done) goes under it.
// The 2D lab's layers come with them and are drawn on the same canvas over x_t's panel, and stay there after
// the hand-over: paths (new positions of up to 50 particles, [k, n, 2]; paths_all replaces them), field (the
// direction from x_t to x0_pred on a grid) and density (uint8 on a grid, drawn as contour lines); grid = [arrows
// per side, density cells per side, half-width of the square they cover].
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

  function bytes(b64) {
    const bin = atob(b64), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
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

  function traces(curve, xt, x0, cloud) {
    const [cx, cy] = curve ? split(curve) : [[], []];
    const [dx, dy] = cloud ? split(cloud) : [[], []];
    const faint = (xa, ya) => ({ x: dx, y: dy, xaxis: xa, yaxis: ya, mode: "markers", hoverinfo: "skip",
                                 marker: { size: 3, color: "rgba(128,128,128,0.22)" }, type: "scatter" });
    const line = (xa, ya) => ({ x: cx, y: cy, xaxis: xa, yaxis: ya, mode: "lines", hoverinfo: "skip",
                                line: { color: "rgba(128,128,128,0.28)", width: 6 }, type: "scatter" });
    const dots = (xy, xa, ya, p) => {
      const [x, y] = xy ? split(xy) : [[], []];
      return { x, y, xaxis: xa, yaxis: ya, mode: "markers", type: "scatter", name: p.key,
               marker: { size: 3.5, color: p.colour }, hovertemplate: "(%{x:.3f}, %{y:.3f})<extra></extra>" };
    };
    return [line("x", "y"), line("x2", "y2"), dots(xt, "x", "y", PANELS[0]), dots(x0, "x2", "y2", PANELS[1]),
            faint("x", "y"), faint("x2", "y2")];
  }

  const LEVELS = [25, 70, 130, 200]; // contour levels of the density, out of 255

  function contours(ctx, h, n, lim, X, Y) { // marching squares on the density's cell centres, one stroke
    const c = (i) => -lim + (i + 0.5) * 2 * lim / n;
    const cross = (u, v, L) => (L - u) / (v - u); // where level L crosses from value u to value v
    ctx.strokeStyle = "rgba(44,160,44,0.85)"; ctx.lineWidth = 1.2;
    ctx.beginPath();
    for (let iy = 0; iy < n - 1; iy++) for (let ix = 0; ix < n - 1; ix++) {
      const a = h[iy * n + ix], b = h[iy * n + ix + 1], e = h[(iy + 1) * n + ix + 1], d = h[(iy + 1) * n + ix];
      const hi = Math.max(a, b, d, e), lo = Math.min(a, b, d, e);
      if (hi < LEVELS[0]) continue; // an empty cell: most of the grid
      for (const L of LEVELS) {
        if (L <= lo || L > hi) continue;
        const p = []; // the crossings on the edges bottom (a-b), right (b-e), top (d-e), left (a-d)
        if ((a < L) !== (b < L)) p.push(ix + cross(a, b, L), iy);
        if ((b < L) !== (e < L)) p.push(ix + 1, iy + cross(b, e, L));
        if ((d < L) !== (e < L)) p.push(ix + cross(d, e, L), iy + 1);
        if ((a < L) !== (d < L)) p.push(ix, iy + cross(a, d, L));
        for (let k = 0; k + 3 < p.length; k += 4) {
          ctx.moveTo(X(c(p[k])), Y(c(p[k + 1]))); ctx.lineTo(X(c(p[k + 2])), Y(c(p[k + 3])));
        }
      }
    }
    ctx.stroke();
  }

  function trails(ctx, chunks, from, last, n, X, Y) { // each particle's polyline, from chunk `from` on, each
    for (let j = 0; j < n; j++) {                      // continuing from its last drawn position
      ctx.strokeStyle = `hsla(${(j * 137) % 360},70%,38%,0.55)`; ctx.lineWidth = 1;
      ctx.beginPath();
      if (last[j]) ctx.moveTo(last[j][0], last[j][1]);
      for (let c = from; c < chunks.length; c++) for (let k = 0; k < chunks[c].length / (2 * n); k++) {
        const i = 2 * (k * n + j), x = X(chunks[c][i]), y = Y(chunks[c][i + 1]);
        if (last[j]) ctx.lineTo(x, y); else ctx.moveTo(x, y);
        last[j] = [x, y];
      }
      ctx.stroke();
    }
  }

  function arrows(ctx, d, n, lim, X, Y) { // the field: a short arrow per grid point, its length capped at a cell
    const cell = 2 * lim / (n - 1), px = Math.abs(X(cell) - X(0));
    ctx.strokeStyle = "rgba(90,40,140,0.8)"; ctx.lineWidth = 1.2;
    ctx.beginPath();
    for (let iy = 0; iy < n; iy++) for (let ix = 0; ix < n; ix++) {
      const i = 2 * (iy * n + ix), dx = d[i], dy = d[i + 1], m = Math.hypot(dx, dy);
      if (m < 1e-9) continue;
      const len = 0.8 * px * Math.min(1, m / cell), ux = dx / m, uy = -dy / m; // pixels: y grows downwards
      const x0 = X(-lim + ix * cell), y0 = Y(-lim + iy * cell), x1 = x0 + len * ux, y1 = y0 + len * uy;
      ctx.moveTo(x0, y0); ctx.lineTo(x1, y1);
      ctx.moveTo(x1, y1); ctx.lineTo(x1 - 0.3 * len * (ux + 0.6 * uy), y1 - 0.3 * len * (uy - 0.6 * ux));
      ctx.moveTo(x1, y1); ctx.lineTo(x1 - 0.3 * len * (ux - 0.6 * uy), y1 - 0.3 * len * (uy + 0.6 * ux));
    }
    ctx.stroke();
  }

  function mount(element, props, watch) {
    const box = element.querySelector(".live-scatter");
    const plot = box.querySelector(".live-plot");
    const canvas = box.querySelector("canvas");
    const caption = box.querySelector(".live-caption") || document.createElement("div");
    const narrowBox = () => box.clientWidth > 0 && box.clientWidth < NARROW_PX;
    const s = { narrow: narrowBox(), curve: null, cloud: null, pending: null, last: null, raf: 0, timer: 0,
                handed: true, painted: 0, ready: false, lastStep: -1,
                layers: { paths: [], pathsN: 0, field: null, density: null, grid: [21, 48, 3], trail: null, key: "",
                          drawn: 0, last: [] } };
    box.liveStats = s;
    let P = null; // the plotly that drew this plot: Gradio's gr.Plot loads its own (older) one into window.Plotly
                  // when a tab with a plot opens, and one plotly cannot re-render a figure that another built

    function trailCanvas(fl, X, Y) { // the paths live on an offscreen canvas: each frame adds only its new steps
      const L = s.layers, xa = fl.xaxis, ya = fl.yaxis, dpr = window.devicePixelRatio || 1;
      const key = [plot.clientWidth, plot.clientHeight, dpr, xa._offset, xa._length, ya._offset, ya._length].join();
      if (!L.trail) L.trail = document.createElement("canvas");
      if (key !== L.key || L.drawn > L.paths.length) { // new geometry, or the paths were replaced: from scratch
        L.trail.width = Math.round(plot.clientWidth * dpr); L.trail.height = Math.round(plot.clientHeight * dpr);
        L.key = key; L.drawn = 0; L.last = [];
      }
      const ctx = L.trail.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.save();
      ctx.beginPath(); ctx.rect(xa._offset, ya._offset, xa._length, ya._length); ctx.clip();
      trails(ctx, L.paths, L.drawn, L.last, L.pathsN, X, Y);
      ctx.restore();
      L.drawn = L.paths.length;
      return L.trail;
    }

    function drawLayers(ctx, fl) {
      const L = s.layers, xa = fl.xaxis, ya = fl.yaxis, [fn, dn, lim] = L.grid;
      if (!L.paths.length && !L.field && !L.density) return;
      const X = (v) => xa._offset + xa.c2p(v), Y = (v) => ya._offset + ya.c2p(v);
      ctx.save();
      ctx.beginPath(); ctx.rect(xa._offset, ya._offset, xa._length, ya._length); ctx.clip();
      if (L.density) contours(ctx, L.density, dn, lim, X, Y);
      if (L.paths.length) {
        const trail = trailCanvas(fl, X, Y);
        if (trail.width && trail.height) { // nothing to copy while the plot is hidden (another tab shown)
          ctx.save(); ctx.setTransform(1, 0, 0, 1, 0, 0); ctx.drawImage(trail, 0, 0); ctx.restore();
        }
      }
      if (L.field) arrows(ctx, L.field, fn, lim, X, Y);
      ctx.restore();
    }

    function canvasContext() {
      const dpr = window.devicePixelRatio || 1, w = plot.clientWidth, h = plot.clientHeight;
      if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
        canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
        canvas.style.width = w + "px"; canvas.style.height = h + "px";
      }
      const ctx = canvas.getContext("2d");
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.clearRect(0, 0, w, h);
      return ctx;
    }

    function paint() {
      s.raf = 0;
      const f = s.pending, fl = plot._fullLayout;
      if (!f || !fl || !fl.xaxis2) return;
      s.pending = null;
      const ctx = canvasContext();
      drawLayers(ctx, fl);
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
      P.react(plot, traces(s.curve, f.points.xt, f.points.x0, s.cloud), layout(s.narrow), CONFIG).then(() => {
        drawLayers(canvasContext(), plot._fullLayout); // the layers stay over the real points
        box.dataset.final = String(f.step);
      });
    }

    function takeLayers(value) {
      const L = s.layers;
      if (value.step === 0 || (value.step < s.lastStep && !value.done)) { // a new run
        L.paths = []; L.field = null; L.density = null; L.drawn = Infinity;
      }
      s.lastStep = value.step;
      if (value.grid) L.grid = value.grid;
      if (value.paths) {
        const chunk = decode(value.paths);
        L.pathsN = value.paths_n;
        if (value.paths_all) { L.paths = [chunk]; L.drawn = Infinity; } else L.paths.push(chunk);
      }
      if (value.field) L.field = decode(value.field);
      if (value.density) L.density = bytes(value.density);
      const shown = [L.paths.length ? "paths" : "", L.field ? "field" : "", L.density ? "density" : ""]
        .filter(Boolean).join(" ");
      if (box.dataset.layers !== shown) box.dataset.layers = shown; // a DOM write only when it changes
    }

    function show(value) {
      if (value && "caption" in value && caption.textContent !== (value.caption || "")) {
        caption.textContent = value.caption || "";
      }
      if (!value || !value.xt || !s.ready) return;
      if ("curve" in value) s.curve = value.curve ? decode(value.curve) : null;
      if ("cloud" in value) s.cloud = value.cloud ? decode(value.cloud) : null;
      takeLayers(value);
      const f = { step: value.step, done: value.done, points: { xt: decode(value.xt), x0: decode(value.x0) } };
      s.last = f;
      clearTimeout(s.timer);
      if (value.done) { s.handed = false; handOver(); return; }
      if (s.handed) { // a new stream: empty plotly's point traces, paint on the canvas from now on
        s.handed = false;
        box.dataset.final = "";
        const t = traces(s.curve, null, null, s.cloud); // and this run's backdrop: the curve or the data
        P.restyle(plot, { x: t.map((d) => d.x), y: t.map((d) => d.y) }, [0, 1, 2, 3, 4, 5]);
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
      P.newPlot(plot, traces(s.curve, null, null, null), layout(s.narrow), CONFIG)
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
