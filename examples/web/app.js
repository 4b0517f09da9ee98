/* The teaching page's script (examples/web/index.html) and, in the same file,
 * its Web Worker. The worker owns acn_web.wasm (examples/web/acn_web.c) and
 * trains in chunks, yielding between them so that pause and reset get through;
 * the page keeps the history and draws it. No libraries, nothing fetched but
 * acn_web.wasm from beside this script.
 *
 * Messages, page -> worker:
 *   {type:'setup', gen, depth, width, lr, seed}  new networks (web_setup), then a probe
 *   {type:'run'} / {type:'pause'}                 train chunk after chunk / stop after this chunk
 *   {type:'steps', n, final}                      train exactly n more steps (final: flag the last report)
 *   {type:'chain', L, x0, w}                      the 1-D chain (web_chain)
 * worker -> page:
 *   {type:'ready', maxl}
 *   {type:'progress', gen, steps, loss[3], gnorm[3][depth], probe[3][depth+1], running, done}
 *   {type:'chain', L, y[3], rows[L][8]}
 *   {type:'error', gen, kind, message}            kind 'load' when the module could not be fetched
 *
 * The test hook: index.html?test=STEPS[&depth=D&width=W&lr=R&seed=S] sets up,
 * trains exactly STEPS steps, probes, draws, then sets
 *   window.acnTest = {steps, loss: [3], probe: [[depth + 1] x 3], done: true}
 * and writes "test done" into #status; on any error window.acnTest = {error}
 * and #status reads "error: ...".
 */
'use strict';

var NETS = ['plain', 'residual', 'ACN'];

if (typeof document === 'undefined') workerMain();
else pageMain();

/* ======================================================================
 * The worker: acn_web.wasm, with the six WASI functions it imports.
 * ====================================================================== */
function workerMain() {
  var ex = null, memory = null, queue = [];
  var gen = 0, depth = 0, running = false, remaining = 0, final = false, scheduled = false;
  var isSetUp = false; /* false until a web_setup succeeds: training waits for one */
  var msPerStep = 20, TARGET_MS = 200, MAX_CHUNK = 10;
  var decoder = new TextDecoder();

  function cstr(ptr) {
    var u = new Uint8Array(memory.buffer), end = ptr;
    while (u[end]) end++;
    return decoder.decode(u.subarray(ptr, end));
  }
  function floats(ptr, n) { return Array.from(new Float32Array(memory.buffer, ptr, n)); }

  var wasi = {
    environ_sizes_get: function (countPtr, sizePtr) {
      var v = new DataView(memory.buffer);
      v.setUint32(countPtr, 0, true);
      v.setUint32(sizePtr, 0, true);
      return 0;
    },
    environ_get: function () { return 0; },
    fd_write: function (fd, iovs, iovsLen, nwrittenPtr) {
      var v = new DataView(memory.buffer), total = 0, text = '';
      for (var i = 0; i < iovsLen; i++) {
        var p = v.getUint32(iovs + 8 * i, true), len = v.getUint32(iovs + 8 * i + 4, true);
        text += decoder.decode(new Uint8Array(memory.buffer, p, len));
        total += len;
      }
      if (text.length) (fd === 2 ? console.error : console.log)(text.replace(/\n$/, ''));
      v.setUint32(nwrittenPtr, total, true);
      return 0;
    },
    fd_close: function () { return 0; },
    fd_seek: function () { return 70; /* ESPIPE */ },
    proc_exit: function (code) { throw new Error('acn_web.wasm called proc_exit(' + code + ')'); }
  };

  /* A web_* call that returned 1: its message from web_error(). */
  function check(name, rc) {
    if (rc === 0) return;
    var text = cstr(ex.web_error()) || 'failed';
    throw new Error(text.indexOf(name) === 0 ? text : name + ': ' + text);
  }

  function fail(err, kind) {
    running = false;
    remaining = 0;
    final = false;
    var message = err && err.message ? err.message : String(err);
    console.error('acn worker: ' + message);
    postMessage({type: 'error', gen: gen, kind: kind || 'wasm', message: message});
  }

  function load() {
    var url = new URL('acn_web.wasm', self.location.href).href;
    var imports = {wasi_snapshot_preview1: wasi};
    return fetch(url).then(function (resp) {
      if (!resp.ok) throw new Error('cannot fetch ' + url + ' (HTTP ' + resp.status + ')');
      if (WebAssembly.instantiateStreaming && /application\/wasm/.test(resp.headers.get('Content-Type') || ''))
        return WebAssembly.instantiateStreaming(resp, imports);
      return resp.arrayBuffer().then(function (buf) { return WebAssembly.instantiate(buf, imports); });
    }).then(function (r) {
      ex = r.instance.exports;
      memory = ex.memory;
      ex._initialize();
    });
  }

  function report(done) {
    var loss = floats(ex.web_loss_ptr(), 3), gnorm = [], probe = [];
    var gp = ex.web_gnorm_ptr(), pp = ex.web_probe_ptr(), maxl = ex.web_maxl();
    for (var n = 0; n < 3; n++) {
      gnorm.push(floats(gp + 4 * n * maxl, depth));
      probe.push(floats(pp + 4 * n * (maxl + 1), depth + 1));
    }
    postMessage({type: 'progress', gen: gen, steps: ex.web_steps(), loss: loss, gnorm: gnorm, probe: probe,
                 running: running, done: !!done});
  }

  function schedule() {
    if (scheduled || (!running && remaining <= 0)) return;
    scheduled = true;
    setTimeout(tick, 0);
  }

  /* One chunk: as many steps as fit in about TARGET_MS (at most 10, and no
   * more than a Step or the test asked for), then a probe and a report. The
   * test's steps (final set) go in chunks of exactly 10, as the native build
   * that checks them does (the losses reported are a chunk's means). */
  function tick() {
    scheduled = false;
    if (!isSetUp || (!running && remaining <= 0)) return;
    var n = final ? MAX_CHUNK : Math.max(1, Math.min(MAX_CHUNK, Math.round(TARGET_MS / msPerStep)));
    if (remaining > 0) n = Math.min(n, remaining);
    try {
      var t0 = performance.now();
      check('web_train', ex.web_train(n));
      msPerStep = 0.5 * msPerStep + 0.5 * Math.max(0.1, (performance.now() - t0) / n);
      if (remaining > 0) remaining -= n;
      check('web_probe', ex.web_probe());
      var done = final && remaining <= 0;
      if (done) final = false;
      report(done);
    } catch (err) {
      fail(err);
      return;
    }
    schedule();
  }

  function handle(msg) {
    try {
      switch (msg.type) {
      case 'setup':
        gen = msg.gen;
        running = false;
        remaining = 0;
        final = false;
        depth = msg.depth;
        isSetUp = false;
        check('web_setup', ex.web_setup(msg.depth, msg.width, msg.lr, msg.seed));
        isSetUp = true;
        check('web_probe', ex.web_probe());
        report(false);
        break;
      case 'run':
        if (!isSetUp) break;
        running = true;
        schedule();
        break;
      case 'pause':
        running = false;
        break;
      case 'steps':
        if (!isSetUp) break;
        remaining += msg.n;
        if (msg.final) final = true;
        if (remaining <= 0 && final) { /* nothing to train: probe and report now */
          final = false;
          check('web_probe', ex.web_probe());
          report(true);
        }
        schedule();
        break;
      case 'chain': {
        var w = new Float32Array(memory.buffer, ex.web_chain_w_ptr(), 12);
        w.fill(0);
        for (var i = 0; i < msg.L && i < 12; i++) w[i] = msg.w[i];
        check('web_chain', ex.web_chain(msg.L, msg.x0));
        var out = floats(ex.web_chain_out_ptr(), 3 + 8 * msg.L), rows = [];
        for (var j = 0; j < msg.L; j++) rows.push(out.slice(3 + 8 * j, 11 + 8 * j));
        postMessage({type: 'chain', L: msg.L, y: out.slice(0, 3), rows: rows});
        break;
      }
      }
    } catch (err) {
      fail(err);
    }
  }

  self.onmessage = function (e) {
    if (!ex) queue.push(e.data);
    else handle(e.data);
  };
  load().then(function () {
    postMessage({type: 'ready', maxl: ex.web_maxl()});
    var q = queue;
    queue = [];
    q.forEach(handle);
  }, function (err) {
    fail(err, 'load');
  });
}

/* ======================================================================
 * The page.
 * ====================================================================== */
function pageMain() {
  var COLORS = ['#d55e00', '#0072b2', '#009e73'];
  var DASH = [[9, 5], [], []];
  var MARK = ['square', 'circle', 'triangle'];
  var $ = function (id) { return document.getElementById(id); };

  var params = new URLSearchParams(location.search);
  var testSteps = params.has('test') ? parseInt(params.get('test'), 10) : null;
  if (testSteps !== null && !(testSteps >= 0)) testSteps = 0;

  var worker = null, gen = 0, running = false, failed = false, testDone = false;
  var cur = null; /* settings in use: depth, width, lr, seed */
  var hist = null; /* steps[], loss[3][], gnorm[3][] (arrays of depth) */
  var probe = null; /* [3][depth + 1] */
  var steps = 0, lastLoss = null;

  /* ---- status, errors ---------------------------------------------------- */
  function setStatus(text, isError) {
    var s = $('status');
    s.textContent = text;
    s.className = isError ? 'error' : '';
  }
  function showError(message, kind) {
    if (failed && kind !== 'load') return;
    failed = true;
    running = false;
    console.error('error: ' + message);
    var text = 'error: ' + message;
    if (location.protocol === 'file:')
      text = 'error: this page cannot run from a file: serve it with `make serve-web` in the project folder, ' +
             'then open http://127.0.0.1:8000/ (the browser said: ' + message + ')';
    else if (kind === 'load')
      text += ' \u2014 acn_web.wasm has to lie beside index.html: `make web` builds both into build/web/, ' +
              '`make serve-web` builds and serves them on http://127.0.0.1:8000/';
    setStatus(text, true);
    window.acnTest = {error: message};
    updateButtons();
  }

  /* ---- settings ------------------------------------------------------------ */
  function ensureOption(sel, value, label) {
    for (var i = 0; i < sel.options.length; i++)
      if (parseFloat(sel.options[i].value) === parseFloat(value)) { sel.selectedIndex = i; return; }
    var o = document.createElement('option');
    o.value = value;
    o.textContent = label || value;
    sel.appendChild(o);
    sel.value = value;
  }
  function readSettings() {
    return {depth: parseInt($('depth').value, 10), width: parseInt($('width').value, 10),
            lr: parseFloat($('lr').value), seed: parseInt($('seed').value, 10) || 0};
  }
  /* URL parameters (the test's, or a shared link) go straight to web_setup,
   * which checks them; the controls show them where they can. */
  var urlSettings = readSettings();
  if (params.has('depth')) { urlSettings.depth = parseInt(params.get('depth'), 10); $('depth').value = urlSettings.depth; }
  if (params.has('width')) { urlSettings.width = parseInt(params.get('width'), 10); ensureOption($('width'), String(urlSettings.width)); }
  if (params.has('lr')) { urlSettings.lr = parseFloat(params.get('lr')); ensureOption($('lr'), params.get('lr')); }
  if (params.has('seed')) { urlSettings.seed = parseInt(params.get('seed'), 10); $('seed').value = urlSettings.seed; }
  $('depth-val').textContent = $('depth').value;

  function settingsChanged() {
    $('depth-val').textContent = $('depth').value;
    var s = readSettings();
    $('dirty').hidden = !cur || (s.depth === cur.depth && s.width === cur.width && s.lr === cur.lr && s.seed === cur.seed);
    $('reset').classList.toggle('attention', !$('dirty').hidden);
  }
  ['depth', 'width', 'lr', 'seed'].forEach(function (id) {
    $(id).addEventListener('input', settingsChanged);
    $(id).addEventListener('change', settingsChanged);
  });

  function updateButtons() {
    var ok = !!worker && !failed && cur !== null && testSteps === null;
    $('train').disabled = !ok;
    $('step').disabled = !ok || running;
    $('reset').disabled = !worker || (testSteps !== null && !testDone);
    $('train').textContent = running ? 'Pause' : 'Train';
  }

  function setup(s) {
    gen++;
    running = false;
    failed = false;
    cur = s;
    hist = {steps: [], loss: [[], [], []], gnorm: [[], [], []]};
    probe = null;
    steps = 0;
    lastLoss = null;
    var cut = $('cut');
    cut.max = Math.max(0, s.depth);
    cut.value = Math.max(0, s.depth);
    $('cut-val').textContent = cut.value;
    settingsChanged();
    worker.postMessage({type: 'setup', gen: gen, depth: s.depth, width: s.width, lr: s.lr, seed: s.seed});
    setStatus(testSteps === null ? 'ready: press Train' : 'test: training ' + testSteps + ' steps\u2026');
    updateButtons();
    drawAll();
  }

  /* ---- messages from the worker ------------------------------------------ */
  function onProgress(m) {
    if (m.gen !== gen || failed) return;
    steps = m.steps;
    probe = m.probe;
    if (m.steps > 0 && (hist.steps.length === 0 || m.steps > hist.steps[hist.steps.length - 1])) {
      hist.steps.push(m.steps);
      for (var n = 0; n < 3; n++) {
        hist.loss[n].push(m.loss[n]);
        hist.gnorm[n].push(m.gnorm[n]);
      }
      lastLoss = m.loss;
    }
    var line = 'step ' + steps;
    if (lastLoss) line += ' \u00b7 loss ' + NETS.map(function (name, n) { return name + ' ' + lastLoss[n].toFixed(4); }).join(', ');
    $('stepline').textContent = line;
    drawAll();
    if (testSteps !== null) {
      if (m.done) {
        testDone = true;
        window.acnTest = {steps: m.steps, loss: m.loss.slice(), probe: m.probe.map(function (r) { return r.slice(); }),
                          done: true};
        setStatus('test done');
        updateButtons();
      }
    } else if (running) setStatus('training\u2026');
    else setStatus(steps === 0 ? 'ready: press Train' : 'paused');
  }

  function onMessage(e) {
    var m = e.data;
    if (m.type === 'ready') {
      $('depth').max = m.maxl;
      setup(urlSettings);
      if (testSteps !== null) worker.postMessage({type: 'steps', n: testSteps, final: true});
      sendChain();
    } else if (m.type === 'progress') onProgress(m);
    else if (m.type === 'chain') onChain(m);
    else if (m.type === 'error') {
      if (m.kind !== 'load' && m.gen !== undefined && m.gen !== gen && m.gen !== 0) return;
      showError(m.message, m.kind);
    }
  }

  /* ---- buttons ------------------------------------------------------------- */
  $('train').addEventListener('click', function () {
    running = !running;
    worker.postMessage({type: running ? 'run' : 'pause'});
    setStatus(running ? 'training\u2026' : 'paused');
    updateButtons();
  });
  $('step').addEventListener('click', function () {
    worker.postMessage({type: 'steps', n: 10});
  });
  $('reset').addEventListener('click', function () {
    if (testSteps !== null) { testSteps = null; testDone = false; }
    setup(readSettings());
  });
  $('cut').addEventListener('input', function () {
    $('cut-val').textContent = $('cut').value;
    drawProbe();
    drawCutReadout();
  });

  /* ---- canvases ------------------------------------------------------------ */
  /* The canvas at the device's resolution; drawing in CSS pixels. */
  function prep(canvas) {
    var dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    var ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = '15px system-ui, sans-serif';
    ctx.lineJoin = 'round';
    return {ctx: ctx, w: w, h: h, dpr: dpr};
  }

  function niceStep(range, count) {
    var raw = range / Math.max(1, count), p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  function marker(ctx, kind, x, y, r) {
    ctx.beginPath();
    if (kind === 'square') ctx.rect(x - r, y - r, 2 * r, 2 * r);
    else if (kind === 'triangle') { ctx.moveTo(x, y - 1.2 * r); ctx.lineTo(x + 1.1 * r, y + 0.8 * r); ctx.lineTo(x - 1.1 * r, y + 0.8 * r); ctx.closePath(); }
    else ctx.arc(x, y, r, 0, 2 * Math.PI);
    ctx.fill();
  }

  /* Axes, ticks and labels; returns the mapping from data to pixels. */
  function axes(c, o) {
    var ctx = c.ctx, L = 66, R = 14, T = 30, B = 52;
    var pw = c.w - L - R, ph = c.h - T - B;
    var ly = function (v) { return o.logY ? Math.log10(v) : v; };
    var y0 = ly(o.ymin), y1 = ly(o.ymax);
    var X = function (v) { return L + (v - o.xmin) / (o.xmax - o.xmin || 1) * pw; };
    var Y = function (v) { return T + ph - (ly(v) - y0) / (y1 - y0 || 1) * ph; };
    ctx.strokeStyle = '#e3e3e3';
    ctx.fillStyle = '#333';
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    o.yticks.forEach(function (t) {
      var y = Math.round(Y(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(L, y); ctx.lineTo(L + pw, y); ctx.stroke();
      ctx.fillText(o.yfmt ? o.yfmt(t) : String(t), L - 6, y);
    });
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    o.xticks.forEach(function (t) {
      var x = Math.round(X(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, T); ctx.lineTo(x, T + ph); ctx.stroke();
      ctx.fillText(String(t), x, T + ph + 5);
    });
    ctx.strokeStyle = '#444';
    ctx.strokeRect(L + 0.5, T + 0.5, pw, ph);
    ctx.font = '16px system-ui, sans-serif';
    ctx.fillText(o.xlabel, L + pw / 2, T + ph + 27);
    ctx.save();
    ctx.translate(16, T + ph / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = 'middle';
    ctx.fillText(o.ylabel, 0, 0);
    ctx.restore();
    ctx.font = '15px system-ui, sans-serif';
    return {X: X, Y: Y, L: L, T: T, pw: pw, ph: ph};
  }

  function legend(c, m, x, y) {
    var ctx = c.ctx;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.font = '16px system-ui, sans-serif';
    NETS.forEach(function (name, n) {
      ctx.strokeStyle = COLORS[n];
      ctx.fillStyle = COLORS[n];
      ctx.lineWidth = 2.5;
      ctx.setLineDash(DASH[n]);
      ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 30, y); ctx.stroke();
      ctx.setLineDash([]);
      marker(ctx, MARK[n], x + 15, y, 4.5);
      ctx.fillStyle = '#222';
      ctx.fillText(name, x + 36, y);
      x += 48 + ctx.measureText(name).width;
    });
    ctx.font = '15px system-ui, sans-serif';
  }

  function series(ctx, a, xs, ys, n, marks) {
    ctx.strokeStyle = COLORS[n];
    ctx.fillStyle = COLORS[n];
    ctx.lineWidth = n === 2 ? 3 : 2.5;
    ctx.setLineDash(DASH[n]);
    ctx.beginPath();
    for (var i = 0; i < xs.length; i++) {
      var x = a.X(xs[i]), y = a.Y(ys[i]);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    }
    ctx.stroke();
    ctx.setLineDash([]);
    if (marks) for (var j = 0; j < xs.length; j++) marker(ctx, MARK[n], a.X(xs[j]), a.Y(ys[j]), 4);
  }

  /* (a) the probe curve, with the cut at k. */
  function drawProbe() {
    var c = prep($('probe-chart')), ctx = c.ctx;
    var depth = cur ? Math.max(1, cur.depth) : 12, k = parseInt($('cut').value, 10);
    var xt = [], st = Math.max(1, niceStep(depth, 12));
    for (var t = 0; t <= depth; t += st) xt.push(t);
    var a = axes(c, {xmin: 0, xmax: depth, ymin: 0, ymax: 100, xticks: xt, yticks: [0, 20, 40, 60, 80, 100],
                     xlabel: 'blocks kept (k)', ylabel: 'test accuracy (%)'});
    /* the blocks a cut at k removes, shaded */
    if (k < depth) {
      ctx.fillStyle = 'rgba(0,0,0,0.06)';
      ctx.fillRect(a.X(k), a.T, a.X(depth) - a.X(k), a.ph);
    }
    ctx.setLineDash([4, 4]);
    ctx.strokeStyle = '#888';
    ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(a.X(0), a.Y(10)); ctx.lineTo(a.X(depth), a.Y(10)); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = '#777';
    ctx.textAlign = 'left';
    ctx.textBaseline = 'bottom';
    ctx.fillText('chance', a.X(0) + 4, a.Y(10) - 2);
    if (probe) {
      var xs = [];
      for (var i = 0; i <= depth; i++) xs.push(i);
      for (var n = 0; n < 3; n++) series(ctx, a, xs, probe[n].slice(0, depth + 1), n, depth <= 24);
    }
    /* the cut */
    ctx.strokeStyle = '#111';
    ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(a.X(k), a.T); ctx.lineTo(a.X(k), a.T + a.ph); ctx.stroke();
    ctx.fillStyle = '#111';
    ctx.textAlign = k > depth / 2 ? 'right' : 'left';
    ctx.textBaseline = 'top';
    ctx.font = 'bold 15px system-ui, sans-serif';
    var label = 'cut at k = ' + k, lw = ctx.measureText(label).width, lx = a.X(k) + (k > depth / 2 ? -6 - lw : 6);
    ctx.fillStyle = 'rgba(255,255,255,0.85)';
    ctx.fillRect(lx - 3, a.T + a.ph - 25, lw + 6, 21);
    ctx.fillStyle = '#111';
    ctx.textAlign = 'left';
    ctx.fillText(label, lx, a.T + a.ph - 22);
    ctx.font = '15px system-ui, sans-serif';
    legend(c, a, a.L + 4, 14);
  }

  function drawCutReadout() {
    var el = $('cut-readout');
    if (!probe || !cur) { el.textContent = ''; return; }
    var k = parseInt($('cut').value, 10), depth = cur.depth;
    var html = 'kept ' + k + ' of ' + depth + ' blocks (' + Math.round(100 * k / depth) + '% of the block weights): ';
    html += NETS.map(function (name, n) {
      return '<span class="swatch" style="background:' + COLORS[n] + '"></span>' + name + ' <span class="v">' +
             probe[n][k].toFixed(1) + '%</span>' +
             (k < depth ? ' <span class="note">(full: ' + probe[n][depth].toFixed(1) + '%)</span>' : '');
    }).join(' &nbsp; ');
    el.innerHTML = html;
  }

  /* (b) the training loss, log y. */
  function drawLoss() {
    var c = prep($('loss-chart')), ctx = c.ctx;
    var xs = hist ? hist.steps : [], lo = Infinity, hi = -Infinity;
    if (hist) hist.loss.forEach(function (l) {
      l.forEach(function (v) { if (v > 0 && isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    });
    if (!(lo < Infinity)) { lo = 0.1; hi = 3; }
    var e0 = Math.floor(Math.log10(lo)), e1 = Math.ceil(Math.log10(hi));
    if (e1 <= e0) e1 = e0 + 1;
    var yt = [];
    for (var e = e0; e <= e1; e++) {
      yt.push(Math.pow(10, e));
      if (e1 - e0 <= 2 && e < e1) { yt.push(2 * Math.pow(10, e)); yt.push(5 * Math.pow(10, e)); }
    }
    var xmax = Math.max(10, steps), st = niceStep(xmax, 8), xt = [];
    for (var t = 0; t <= xmax + 1e-9; t += st) xt.push(Math.round(t));
    var a = axes(c, {xmin: 0, xmax: xmax, ymin: Math.pow(10, e0), ymax: Math.pow(10, e1), logY: true, xticks: xt,
                     yticks: yt, yfmt: function (v) { return v >= 1 ? String(v) : v.toPrecision(1); },
                     xlabel: 'training step', ylabel: 'training loss'});
    if (xs.length) {
      ctx.save();
      ctx.beginPath(); ctx.rect(a.L, a.T, a.pw, a.ph); ctx.clip();
      for (var n = 0; n < 3; n++) {
        var ys = hist.loss[n].map(function (v) { return Math.max(v, Math.pow(10, e0)); });
        series(ctx, a, xs, ys, n, xs.length <= 40);
      }
      ctx.restore();
    } else {
      ctx.fillStyle = '#888'; ctx.textAlign = 'center'; ctx.textBaseline = 'middle';
      ctx.fillText('no training yet', a.L + a.pw / 2, a.T + a.ph / 2);
    }
    legend(c, a, a.L + 4, 14);
  }

  /* (c) the heat maps and their colour bar: log10 of the gradient norms on a
   * viridis-like scale shared by the three networks. */
  var VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
                 [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
  function cmap(t) {
    t = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
    var i = Math.min(VIRIDIS.length - 2, Math.floor(t)), f = t - i, a = VIRIDIS[i], b = VIRIDIS[i + 1];
    return [a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1]), a[2] + f * (b[2] - a[2])];
  }
  function gnormRange() {
    var lo = Infinity, hi = -Infinity;
    if (hist) hist.gnorm.forEach(function (cols) {
      cols.forEach(function (col) {
        col.forEach(function (v) { if (v > 0 && isFinite(v)) { var l = Math.log10(v); if (l < lo) lo = l; if (l > hi) hi = l; } });
      });
    });
    if (!(lo < Infinity)) return null;
    lo = Math.max(lo, hi - 8); /* at most 8 decades; below that, the darkest colour */
    if (hi - lo < 0.5) { lo -= 0.25; hi += 0.25; }
    return [lo, hi];
  }

  function drawHeat(n, range) {
    var canvas = $('heat-' + n), c = prep(canvas), ctx = c.ctx;
    var depth = cur ? Math.max(1, cur.depth) : 12;
    var L = 52, R = 18, T = 30, B = 46, pw = Math.max(10, c.w - L - R), ph = Math.max(10, c.h - T - B);
    ctx.fillStyle = COLORS[n];
    ctx.font = 'bold 17px system-ui, sans-serif';
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.fillText(NETS[n], L, 14);
    ctx.font = '15px system-ui, sans-serif';
    var cols = hist ? hist.gnorm[n] : [], xs = hist ? hist.steps : [];
    if (cols.length && range) {
      /* one device pixel column at a time: the chunk that covers its step */
      var W = Math.max(1, Math.round(pw * c.dpr)), H = Math.max(1, Math.round(ph * c.dpr));
      var img = ctx.createImageData(W, H), data = img.data, total = xs[xs.length - 1], j = 0;
      var rgb = [];
      for (var px = 0; px < W; px++) {
        var s = (px + 0.5) / W * total;
        while (j < xs.length - 1 && xs[j] < s) j++;
        for (var b = 0; b < depth; b++) {
          var v = cols[j][b];
          rgb[b] = cmap(v > 0 ? (Math.log10(v) - range[0]) / (range[1] - range[0]) : 0);
        }
        for (var py = 0; py < H; py++) {
          var blk = depth - 1 - Math.min(depth - 1, Math.floor((py + 0.5) / H * depth)); /* block 1 at the bottom */
          var k = 4 * (py * W + px), col = rgb[blk];
          data[k] = col[0]; data[k + 1] = col[1]; data[k + 2] = col[2]; data[k + 3] = 255;
        }
      }
      ctx.putImageData(img, Math.round(L * c.dpr), Math.round(T * c.dpr));
    } else {
      ctx.fillStyle = '#f2f2f2';
      ctx.fillRect(L, T, pw, ph);
      ctx.fillStyle = '#888'; ctx.textAlign = 'center'; ctx.textBaseline = 'middle';
      ctx.fillText('no training yet', L + pw / 2, T + ph / 2);
    }
    ctx.strokeStyle = '#444';
    ctx.lineWidth = 1;
    ctx.strokeRect(L + 0.5, T + 0.5, pw, ph);
    /* block ticks */
    ctx.fillStyle = '#333';
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    var bst = Math.max(1, niceStep(depth, 8));
    var ticks = [1];
    for (var t = bst; t <= depth; t += bst) if (t !== 1) ticks.push(t);
    if (ticks[ticks.length - 1] !== depth && depth - ticks[ticks.length - 1] >= bst / 2) ticks.push(depth);
    ticks.forEach(function (bk) {
      ctx.fillText(String(bk), L - 5, T + ph - (bk - 0.5) / depth * ph);
    });
    ctx.save();
    ctx.translate(14, T + ph / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = 'center';
    ctx.fillText('block (1 = bottom)', 0, 0);
    ctx.restore();
    /* step ticks */
    var total2 = xs.length ? xs[xs.length - 1] : 0;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    if (total2 > 0) {
      var sst = niceStep(total2, 4);
      for (var q = 0; q <= total2 + 1e-9; q += sst) ctx.fillText(String(Math.round(q)), L + q / total2 * pw, T + ph + 4);
    }
    ctx.fillText('training step', L + pw / 2, T + ph + 24);
  }

  function drawColorbar(range) {
    var c = prep($('colorbar')), ctx = c.ctx, T = 30, B = 46, x = 8, bw = 20, ph = c.h - T - B;
    ctx.fillStyle = '#333';
    ctx.font = '14px system-ui, sans-serif';
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.fillText('|grad|', 4, 14);
    for (var i = 0; i < ph; i++) {
      var col = cmap(range ? 1 - (i + 0.5) / ph : 0.5);
      ctx.fillStyle = 'rgb(' + col.map(Math.round).join(',') + ')';
      ctx.fillRect(x, T + i, bw, 1.5);
    }
    ctx.strokeStyle = '#444';
    ctx.strokeRect(x + 0.5, T + 0.5, bw, ph);
    if (!range) return;
    ctx.fillStyle = '#333';
    var span = range[1] - range[0], st = span > 4 ? 2 : 1;
    var Y = function (l) { return T + ph - (l - range[0]) / span * ph; };
    var decades = 0;
    for (var d = Math.ceil(range[0]); d <= range[1] + 1e-9; d++) if (!((d % st + st) % st)) decades++;
    if (decades >= 2) {
      for (var e = Math.ceil(range[0]); e <= range[1] + 1e-9; e += 1) {
        if ((e % st + st) % st) continue;
        ctx.fillRect(x + bw, Y(e), 5, 1);
        ctx.fillText(e >= 0 && e <= 3 ? String(Math.pow(10, e)) : e >= -2 && e < 0 ? Math.pow(10, e).toFixed(-e) : '1e' + e,
                     x + bw + 8, Y(e));
      }
    } else {
      [range[0], (range[0] + range[1]) / 2, range[1]].forEach(function (l) {
        ctx.fillRect(x + bw, Y(l), 5, 1);
        ctx.fillText(Math.pow(10, l).toPrecision(2), x + bw + 8, Y(l));
      });
    }
    ctx.font = '13px system-ui, sans-serif';
    ctx.fillText('log scale', 4, T + ph + 30);
  }

  function drawHeats() {
    var range = gnormRange();
    for (var n = 0; n < 3; n++) drawHeat(n, range);
    drawColorbar(range);
  }

  function drawAll() {
    drawProbe();
    drawCutReadout();
    drawLoss();
    drawHeats();
  }

  var resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawAll, 100);
  });

  /* ---- the 1-D chain ----------------------------------------------------------- */
  var chainW = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
  function chainL() { return parseInt($('chain-L').value, 10); }
  function buildWeightSliders() {
    var box = $('chain-weights'), L = chainL();
    box.innerHTML = '';
    for (var i = 0; i < L; i++) (function (i) {
      var lab = document.createElement('label');
      lab.innerHTML = '<span class="mono">w<sub>' + (i + 1) + '</sub></span>';
      var r = document.createElement('input');
      r.type = 'range'; r.min = -1.5; r.max = 1.5; r.step = 0.05; r.value = chainW[i];
      var v = document.createElement('span');
      v.className = 'val mono';
      v.textContent = chainW[i].toFixed(2);
      r.addEventListener('input', function () {
        chainW[i] = parseFloat(r.value);
        v.textContent = chainW[i].toFixed(2);
        sendChain();
      });
      lab.appendChild(r);
      lab.appendChild(v);
      box.appendChild(lab);
    })(i);
  }
  function sendChain() {
    if (!worker || failed) return;
    var x0 = parseFloat($('chain-x0').value);
    if (!isFinite(x0)) x0 = 0;
    worker.postMessage({type: 'chain', L: chainL(), x0: x0, w: chainW.slice(0, chainL())});
  }
  $('chain-L').addEventListener('input', function () {
    $('chain-L-val').textContent = $('chain-L').value;
    buildWeightSliders();
    sendChain();
  });
  $('chain-x0').addEventListener('input', sendChain);
  $('chain-reset').addEventListener('click', function () {
    for (var i = 0; i < chainW.length; i++) chainW[i] = 0.5;
    buildWeightSliders();
    sendChain();
  });

  function fmt(v) {
    if (!isFinite(v)) return String(v);
    if (v === 0) return '0';
    var a = Math.abs(v);
    if (a >= 1e4 || a < 1e-3) return v.toExponential(3);
    return v.toFixed(4);
  }
  function close(a, b) { return Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(a), Math.abs(b)); }

  function onChain(m) {
    if (m.L !== chainL()) return; /* a stale answer; a newer one is on its way */
    $('chain-y').innerHTML = 'y: <span style="color:' + COLORS[0] + '">plain ' + fmt(m.y[0]) + '</span> &nbsp; ' +
      '<span style="color:' + COLORS[1] + '">residual ' + fmt(m.y[1]) + '</span> &nbsp; ' +
      '<span style="color:' + COLORS[2] + '">ACN ' + fmt(m.y[2]) + '</span>';
    var h = '<tr><th rowspan="2">block i</th><th rowspan="2">w<sub>i</sub></th>' +
      '<th colspan="2" class="plain sep">plain dy/dw<sub>i</sub></th>' +
      '<th colspan="2" class="residual sep">residual dy/dw<sub>i</sub></th>' +
      '<th colspan="4" class="acn sep">ACN dy/dw<sub>i</sub> = DG<sub>i</sub> + FG<sub>i</sub></th></tr>' +
      '<tr><th class="sep">autograd</th><th>closed form</th><th class="sep">autograd</th><th>closed form</th>' +
      '<th class="sep">autograd</th><th>closed form</th><th>DG<sub>i</sub> (direct)</th><th>FG<sub>i</sub> (forward)</th></tr>';
    m.rows.forEach(function (r, i) {
      var td = function (v, other, cls) {
        var bad = other !== undefined && !close(v, other);
        return '<td class="' + (cls || '') + (bad ? ' bad' : '') + '">' + fmt(v) + '</td>';
      };
      h += '<tr><td>' + (i + 1) + '</td><td>' + chainW[i].toFixed(2) + '</td>' +
        td(r[0], r[1], 'sep') + td(r[1], r[0]) + td(r[2], r[3], 'sep') + td(r[3], r[2]) +
        td(r[4], r[5], 'sep') + td(r[5], r[4]) + td(r[6]) + td(r[7]) + '</tr>';
    });
    $('chain-table').innerHTML = h;
  }

  /* ---- start ------------------------------------------------------------------- */
  buildWeightSliders();
  drawAll();
  updateButtons();
  try {
    worker = new Worker('app.js');
  } catch (err) {
    showError('cannot start the worker (' + (err && err.message ? err.message : err) + ')', 'load');
    return;
  }
  worker.onmessage = onMessage;
  worker.onerror = function (e) {
    e.preventDefault && e.preventDefault();
    showError('the worker failed' + (e.message ? ': ' + e.message : ' to load app.js'),
              location.protocol === 'file:' ? 'load' : undefined);
  };
  updateButtons();
}
