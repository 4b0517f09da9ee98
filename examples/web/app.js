/* The teaching page's script (examples/web/index.html) and, in the same file,
 * its Web Worker. The worker owns acn_web.wasm (examples/web/acn_web.c) and
 * works in short ticks, each either one chunk of training (at most 10 steps,
 * about CHUNK_MS long) or one probe, yielding between them so that pause,
 * reset and the chain get through; the page keeps the history and draws it.
 * No libraries, nothing fetched but acn_web.wasm from beside this script.
 *
 * Messages, page -> worker:
 *   {type:'setup', gen, depth, width, lr, seed}  new networks (web_setup), then a probe
 *   {type:'run', cmd, until}                     train until step `until` (null: until 'pause')
 *   {type:'steps', cmd, n, final}                train exactly n more steps first (final: the test's;
 *                                                its chunks are exactly 10 steps, as the native check's)
 *   {type:'pause', cmd}                          stop after this tick; queued steps are dropped
 *   {type:'chain', L, x0, w}                     the 1-D chain (web_chain)
 * worker -> page:
 *   {type:'ready', maxl}
 *   {type:'progress', gen, cmd, steps, loss[3], gnorm[3][depth], probe, probedAt, busy, done}
 *       after every tick and every run/steps/pause; probe ([3][depth + 1]) only when this tick
 *       probed (else null), probedAt the step of the last probe, busy whether more ticks follow
 *       (the page trusts it only when cmd is its latest command's), done when the test's steps
 *       are trained and probed
 *   {type:'chain', L, x0, w, y[3], rows[L][8]}  or  {type:'chain', error}
 *   {type:'error', gen, kind, message}           kind 'load' when the module could not be fetched
 *
 * The test hook: index.html?test=STEPS[&depth=D&width=W&lr=R&seed=S] sets up,
 * trains exactly STEPS steps in chunks of 10, probes, draws, then sets
 *   window.acnTest = {steps, loss: [3], probe: [[depth + 1] x 3], done: true}
 * and writes "test done" into #status; on any error window.acnTest = {error}
 * and #status reads "error: ...".
 */
'use strict';

const NETS = ['plain', 'residual', 'ACN'];

if (typeof document === 'undefined') workerMain();
else pageMain();

/* ======================================================================
 * The worker: acn_web.wasm, with the six WASI functions it imports.
 * ====================================================================== */
function workerMain() {
  const MAX_CHUNK = 10;       /* steps per web_train call, at most; the test's chunks are exactly this */
  const CHUNK_MS = 120;       /* what a chunk of training aims to take: short, so that messages get through */
  const PROBE_EVERY_MS = 300; /* training time between probes, at least (and at least twice a probe's time) */
  const CHAIN_MAX = 12;       /* WEB_CHAIN_MAX in acn_web.c */
  const decoder = new TextDecoder();

  let ex = null, memory = null;
  let early = [];            /* messages that came before the module */
  let gen = 0, cmd = 0, depth = 0;
  let isSetUp = false;       /* false until a web_setup succeeds, and after a failure */
  let running = false;       /* 'run': train until step `until` (null: until 'pause') */
  let until = null;
  let remaining = 0;         /* 'steps': this many more, before any run */
  let final = false;         /* those steps are the test's */
  let probedAt = -1;         /* the step of the last probe */
  let msSinceProbe = 0;      /* training time since then */
  let msPerStep = 20, msPerProbe = 40;
  let scheduled = false;

  function cstr(ptr) {
    const u = new Uint8Array(memory.buffer);
    let end = ptr;
    while (u[end]) end++;
    return decoder.decode(u.subarray(ptr, end));
  }
  function floats(ptr, n) { return Array.from(new Float32Array(memory.buffer, ptr, n)); }

  const wasi = {
    environ_sizes_get(countPtr, sizePtr) {
      const v = new DataView(memory.buffer);
      v.setUint32(countPtr, 0, true);
      v.setUint32(sizePtr, 0, true);
      return 0;
    },
    environ_get() { return 0; },
    fd_write(fd, iovs, iovsLen, nwrittenPtr) {
      const v = new DataView(memory.buffer);
      let total = 0, text = '';
      for (let i = 0; i < iovsLen; i++) {
        const p = v.getUint32(iovs + 8 * i, true), len = v.getUint32(iovs + 8 * i + 4, true);
        text += decoder.decode(new Uint8Array(memory.buffer, p, len));
        total += len;
      }
      if (text.length) (fd === 2 ? console.error : console.log)(text.replace(/\n$/, ''));
      v.setUint32(nwrittenPtr, total, true);
      return 0;
    },
    fd_close() { return 0; },
    fd_seek() { return 70; /* ESPIPE */ },
    proc_exit(code) { throw new Error('acn_web.wasm called proc_exit(' + code + ')'); }
  };

  function messageOf(err) { return err && err.message ? err.message : String(err); }

  /* A web_* call that returned 1: its message from web_error(). */
  function check(name, rc) {
    if (rc === 0) return;
    const text = cstr(ex.web_error()) || 'failed';
    throw new Error(text.startsWith(name) ? text : name + ': ' + text);
  }

  /* Training failed (or the module did not load): stop, and tell the page. */
  function fail(err, kind) {
    isSetUp = false;
    running = false;
    remaining = 0;
    final = false;
    const message = messageOf(err);
    console.error('acn worker: ' + message);
    postMessage({type: 'error', gen, kind: kind || 'wasm', message});
  }

  function load() {
    const url = new URL('acn_web.wasm', self.location.href).href;
    const imports = {wasi_snapshot_preview1: wasi};
    return fetch(url).then((resp) => {
      if (!resp.ok) throw new Error('cannot fetch ' + url + ' (HTTP ' + resp.status + ')');
      if (WebAssembly.instantiateStreaming && /application\/wasm/.test(resp.headers.get('Content-Type') || ''))
        return WebAssembly.instantiateStreaming(resp, imports);
      return resp.arrayBuffer().then((buf) => WebAssembly.instantiate(buf, imports));
    }).then((r) => {
      ex = r.instance.exports;
      memory = ex.memory;
      ex._initialize();
    });
  }

  /* ---- what there is to do ------------------------------------------------ */
  function stepsWanted() {
    if (!isSetUp) return 0;
    if (remaining > 0) return remaining;
    if (!running) return 0;
    return until === null ? Infinity : Math.max(0, until - ex.web_steps());
  }
  function probeIsStale() { return isSetUp && ex.web_steps() !== probedAt; }
  function hasWork() { return stepsWanted() > 0 || probeIsStale(); }

  function report(probed) {
    const maxl = ex.web_maxl(), gp = ex.web_gnorm_ptr(), pp = ex.web_probe_ptr();
    const gnorm = [], probe = probed ? [] : null;
    for (let n = 0; n < 3; n++) {
      gnorm.push(floats(gp + 4 * n * maxl, depth));
      if (probed) probe.push(floats(pp + 4 * n * (maxl + 1), depth + 1));
    }
    const busy = hasWork(), done = final && !busy;
    if (done) final = false;
    postMessage({type: 'progress', gen, cmd, steps: ex.web_steps(), loss: floats(ex.web_loss_ptr(), 3), gnorm,
                 probe, probedAt, busy, done});
  }

  /* ---- the ticks ---------------------------------------------------------- */
  /* One chunk of training: as many steps as fit in about CHUNK_MS (1 to 10,
   * and no more than are wanted); the test's, exactly 10 (the last fewer). */
  function trainChunk(wanted) {
    const fit = Math.max(1, Math.min(MAX_CHUNK, Math.round(CHUNK_MS / msPerStep)));
    const n = Math.min(final ? MAX_CHUNK : fit, wanted);
    const t0 = performance.now();
    check('web_train', ex.web_train(n));
    const ms = performance.now() - t0;
    msPerStep = 0.5 * msPerStep + 0.5 * Math.max(0.1, ms / n);
    msSinceProbe += ms;
    if (remaining > 0) remaining -= n;
    else if (running && until !== null && ex.web_steps() >= until) running = false;
  }

  /* The test accuracy after every block, on its own tick: a probe costs about
   * two training steps, the longest single call the worker makes. */
  function probeNow() {
    const t0 = performance.now();
    check('web_probe', ex.web_probe());
    msPerProbe = 0.5 * msPerProbe + 0.5 * (performance.now() - t0);
    probedAt = ex.web_steps();
    msSinceProbe = 0;
  }

  /* Train while steps are wanted, probing every PROBE_EVERY_MS or so of
   * training (probing is at most a third of the time), and once more when
   * the training stops, so that the last curve is of the last step. */
  function tick() {
    scheduled = false;
    if (!hasWork()) return;
    try {
      const wanted = stepsWanted();
      const probeDue = msSinceProbe >= Math.max(PROBE_EVERY_MS, 2 * msPerProbe);
      if (wanted > 0 && !probeDue) {
        trainChunk(wanted);
        report(false);
      } else {
        probeNow();
        report(true);
      }
    } catch (err) {
      fail(err);
      return;
    }
    schedule();
  }

  function schedule() {
    if (scheduled || !hasWork()) return;
    scheduled = true;
    setTimeout(tick, 0);
  }

  /* After run, steps or pause: the ticks go on, or the page hears now that they have stopped. */
  function resume() {
    if (hasWork()) schedule();
    else report(false);
  }

  /* ---- the 1-D chain: independent of the training -------------------------- */
  function chain(msg) {
    try {
      const L = msg.L, w = new Float32Array(memory.buffer, ex.web_chain_w_ptr(), CHAIN_MAX);
      w.fill(0);
      for (let i = 0; i < L && i < CHAIN_MAX; i++) w[i] = msg.w[i];
      check('web_chain', ex.web_chain(L, msg.x0));
      const out = floats(ex.web_chain_out_ptr(), 3 + 8 * L), rows = [];
      for (let i = 0; i < L; i++) rows.push(out.slice(3 + 8 * i, 11 + 8 * i));
      postMessage({type: 'chain', L, x0: msg.x0, w: msg.w.slice(0, L), y: out.slice(0, 3), rows});
    } catch (err) {
      postMessage({type: 'chain', error: messageOf(err)});
    }
  }

  function handle(msg) {
    if (msg.type === 'chain') {
      chain(msg);
      return;
    }
    if (msg.cmd !== undefined) cmd = msg.cmd;
    try {
      switch (msg.type) {
      case 'setup':
        gen = msg.gen;
        running = false;
        until = null;
        remaining = 0;
        final = false;
        depth = msg.depth;
        isSetUp = false;
        check('web_setup', ex.web_setup(msg.depth, msg.width, msg.lr, msg.seed));
        isSetUp = true;
        probeNow();
        msPerStep = msPerProbe / 2; /* the first chunk's size, before a step is timed */
        report(true);
        break;
      case 'run':
        if (!isSetUp) break;
        running = true;
        until = msg.until;
        remaining = 0;
        resume();
        break;
      case 'steps':
        if (!isSetUp) break;
        remaining += msg.n;
        if (msg.final) final = true;
        resume();
        break;
      case 'pause':
        running = false;
        remaining = 0;
        final = false;
        if (isSetUp) resume();
        break;
      }
    } catch (err) {
      fail(err);
    }
  }

  self.onmessage = (e) => {
    if (!ex) early.push(e.data);
    else handle(e.data);
  };
  load().then(() => {
    postMessage({type: 'ready', maxl: ex.web_maxl()});
    const queued = early;
    early = [];
    queued.forEach(handle);
  }, (err) => {
    fail(err, 'load');
  });
}

/* ======================================================================
 * The page.
 * ====================================================================== */
function pageMain() {
  const $ = (id) => document.getElementById(id);

  /* the colours: index.html's CSS variables, the one place they are set */
  const rootStyle = getComputedStyle(document.documentElement);
  const cssVar = (name) => rootStyle.getPropertyValue(name).trim();
  const COLORS = ['--plain', '--residual', '--acn'].map(cssVar);
  const INK = cssVar('--ink'), MUTED = cssVar('--muted');
  const NET_CLASS = ['plain', 'residual', 'acn'];
  const DASH = [[9, 5], [], []];
  const MARK = ['square', 'circle', 'triangle'];
  const FONT = 'system-ui, sans-serif';

  /* margins around the plot areas, in CSS pixels: the two charts; the heat maps and their colour bar */
  const CHART_MARGIN = {left: 66, right: 58, top: 50, bottom: 52};
  const HEAT_MARGIN = {left: 52, right: 18, top: 34, bottom: 46};

  const SEED_MAX = 2147483647;
  const DEFAULT_DEPTH = 24;

  const params = new URLSearchParams(location.search);
  let testSteps = params.has('test') ? parseInt(params.get('test'), 10) : null;
  if (testSteps !== null && !(testSteps >= 0)) testSteps = 0;
  let testDone = false;

  let worker = null, gen = 0, cmd = 0;
  let failed = false;     /* training failed: Reset starts over */
  let cur = null;         /* the settings in use: depth, width, lr, seed */
  let hist = null;        /* steps[], loss[3][], gnorm[3][] (arrays of depth) */
  let probe = null;       /* [3][depth + 1], probed at step probeStep */
  let probeStep = 0;
  let steps = 0, lastLoss = null;
  let busy = false;       /* the worker is training (Train or Step), or probing after it */
  let continuous = false; /* Train: until Pause or the stop step */
  let pausing = false;    /* Pause pressed; the worker has not yet stopped */
  let stopStep = null;    /* the stop step of the current or last run */

  /* ---- status, errors --------------------------------------------------------- */
  function setStatus(text, isError) {
    const s = $('status');
    s.textContent = text;
    s.className = isError ? 'error' : '';
  }
  function showError(message, kind) {
    if (failed && kind !== 'load') return;
    failed = true;
    busy = continuous = pausing = false;
    console.error('error: ' + message);
    let text = 'error: ' + message;
    if (location.protocol === 'file:')
      text = 'error: this page cannot run from a file: serve it with `make serve-web` in the project folder, ' +
             'then open http://127.0.0.1:8000/ (the browser said: ' + message + ')';
    else if (kind === 'load')
      text += ' \u2014 acn_web.wasm has to lie beside index.html: `make web` builds both into build/web/, ' +
              '`make serve-web` builds and serves them on http://127.0.0.1:8000/';
    setStatus(text, true);
    window.acnTest = {error: message};
    refresh();
  }

  /* An input's value is wrong: mark it and say why beside it (message null: all is well). */
  function markField(input, errorEl, message) {
    input.classList.toggle('invalid', !!message);
    input.setAttribute('aria-invalid', message ? 'true' : 'false');
    errorEl.textContent = message || '';
    errorEl.hidden = !message;
  }

  /* ---- settings ------------------------------------------------------------------ */
  /* A whole number written as digits only (no sign, point or exponent) in min..max, or null. */
  function parseWhole(text, min, max) {
    if (!/^\s*\d+\s*$/.test(text)) return null;
    const v = Number(text);
    return v >= min && v <= max ? v : null;
  }
  const SEED_RULE = 'the seed is a whole number from 0 to ' + SEED_MAX;

  function readSeed() {
    const seed = parseWhole($('seed').value, 0, SEED_MAX);
    markField($('seed'), $('seed-error'), seed === null ? SEED_RULE : null);
    return seed;
  }
  /* The stop step: null when empty (run until Pause), undefined when invalid (and marked). */
  function readStop() {
    const text = $('stop-at').value.trim(), bad = $('stop-at').validity.badInput;
    if (text === '' && !bad) {
      markField($('stop-at'), $('stop-error'), null);
      return null;
    }
    const stop = parseWhole(text, 1, 1e9);
    markField($('stop-at'), $('stop-error'), stop === null ? 'stop at: a whole number of steps, or empty' : null);
    return stop === null ? undefined : stop;
  }

  /* The settings from the controls, or null when the seed is invalid (it is marked). */
  function readControls() {
    const seed = readSeed();
    if (seed === null) return null;
    return {depth: parseInt($('depth').value, 10), width: parseInt($('width').value, 10),
            lr: parseFloat($('lr').value), seed};
  }

  function ensureOption(sel, value) {
    for (const o of sel.options)
      if (parseFloat(o.value) === parseFloat(value)) { sel.value = o.value; return; }
    const o = document.createElement('option');
    o.value = o.textContent = value;
    sel.appendChild(o);
    sel.value = value;
  }

  /* URL parameters (the test's, or a shared link) go to web_setup, which
   * checks their ranges; here, only that they are numbers. The controls show
   * them where they can. Returns the settings, or null after showing an error. */
  function urlSettings() {
    const s = readControls() || {depth: DEFAULT_DEPTH, width: 64, lr: 2e-3, seed: 1};
    const whole = (name) => {
      const v = Number(params.get(name));
      if (!Number.isInteger(v)) throw new Error('the URL parameter ' + name + '=' + params.get(name) + ' is not a whole number');
      return v;
    };
    try {
      if (params.has('depth')) { s.depth = whole('depth'); $('depth').value = s.depth; }
      if (params.has('width')) { s.width = whole('width'); ensureOption($('width'), String(s.width)); }
      if (params.has('lr')) {
        s.lr = Number(params.get('lr'));
        if (!isFinite(s.lr)) throw new Error('the URL parameter lr=' + params.get('lr') + ' is not a number');
        ensureOption($('lr'), params.get('lr'));
      }
      if (params.has('seed')) {
        $('seed').value = params.get('seed');
        s.seed = parseWhole(params.get('seed'), 0, SEED_MAX);
        if (s.seed === null) throw new Error('the URL parameter seed=' + params.get('seed') + ': ' + SEED_RULE);
      }
    } catch (err) {
      showError(err.message);
      return null;
    }
    $('depth-val').textContent = $('depth').value;
    return s;
  }

  function sameSettings(a, b) {
    return a.depth === b.depth && a.width === b.width && a.lr === b.lr && a.seed === b.seed;
  }
  function settingsChanged() {
    $('depth-val').textContent = $('depth').value;
    const s = readControls();
    $('dirty').hidden = !cur || !s || sameSettings(s, cur);
    $('reset').classList.toggle('attention', !$('dirty').hidden);
  }
  ['depth', 'width', 'lr', 'seed'].forEach((id) => {
    $(id).addEventListener('input', settingsChanged);
    $(id).addEventListener('change', settingsChanged);
  });

  /* ---- the state shown: buttons, status, step line ---------------------------------- */
  function statusText() {
    if (!cur) return 'loading\u2026';
    if (busy) return pausing ? 'pausing\u2026' : 'training\u2026';
    if (steps === 0) return 'ready: press Train';
    if (stopStep !== null && steps === stopStep) return 'paused: reached step ' + steps;
    return 'paused';
  }
  function refresh() {
    const ready = !!worker && !failed && cur !== null && testSteps === null;
    $('train').disabled = !ready;
    $('train').textContent = busy && !pausing ? 'Pause' : 'Train';
    $('step').disabled = !ready || continuous;
    $('reset').disabled = !worker || (testSteps !== null && !testDone && !failed);
    if (!failed && testSteps === null) setStatus(statusText());
  }
  function showStepLine() {
    let line = cur ? 'step ' + steps : '';
    if (lastLoss) line += ' \u00b7 loss ' + NETS.map((name, n) => name + ' ' + lastLoss[n].toFixed(4)).join(', ');
    $('stepline').textContent = line;
  }

  function setup(s) {
    gen++;
    busy = continuous = pausing = false;
    failed = false;
    cur = s;
    hist = {steps: [], loss: [[], [], []], gnorm: [[], [], []]};
    probe = null;
    probeStep = 0;
    steps = 0;
    lastLoss = null;
    const cut = $('cut'), depth = Math.max(0, s.depth);
    cut.max = depth; /* before the value, which the old max would clamp */
    cut.value = depth;
    $('cut-val').textContent = depth;
    settingsChanged();
    worker.postMessage({type: 'setup', gen, depth: s.depth, width: s.width, lr: s.lr, seed: s.seed});
    if (testSteps !== null) setStatus('test: training ' + testSteps + ' steps\u2026');
    refresh();
    showStepLine();
    drawAll();
  }

  /* ---- training commands -------------------------------------------------------------- */
  function command(msg) {
    msg.cmd = ++cmd;
    worker.postMessage(msg);
  }
  function train() {
    const stop = readStop();
    if (stop === undefined) return;
    if (stop !== null && stop <= steps) {
      setStatus('at step ' + steps + ' already: raise or clear "stop at"');
      return;
    }
    busy = continuous = true;
    pausing = false;
    stopStep = stop;
    command({type: 'run', until: stop});
    refresh();
  }
  function pause() {
    continuous = false;
    pausing = true;
    command({type: 'pause'});
    refresh();
  }
  function stepTen() {
    busy = true;
    pausing = false;
    stopStep = null;
    command({type: 'steps', n: 10});
    refresh();
  }

  $('train').addEventListener('click', () => (busy && !pausing ? pause() : train()));
  $('step').addEventListener('click', stepTen);
  $('reset').addEventListener('click', () => {
    const s = readControls();
    if (!s) { $('seed').focus(); return; }
    if (testSteps !== null) { testSteps = null; testDone = false; }
    setup(s);
  });
  $('stop-at').addEventListener('input', readStop);
  $('stop-at').addEventListener('change', () => {
    const stop = readStop();
    if (stop === undefined || !continuous) return;
    stopStep = stop; /* a new stop for the run going on */
    command({type: 'run', until: stop});
  });
  $('cut').addEventListener('input', () => {
    $('cut-val').textContent = $('cut').value;
    drawProbe();
    drawCutReadout();
  });

  /* ---- messages from the worker -------------------------------------------------------- */
  function onProgress(m) {
    if (m.gen !== gen || failed) return;
    steps = m.steps;
    if (m.probe) {
      probe = m.probe;
      probeStep = m.probedAt;
    }
    if (m.steps > 0 && (hist.steps.length === 0 || m.steps > hist.steps[hist.steps.length - 1])) {
      hist.steps.push(m.steps);
      for (let n = 0; n < 3; n++) {
        hist.loss[n].push(m.loss[n]);
        hist.gnorm[n].push(m.gnorm[n]);
      }
      lastLoss = m.loss;
    }
    if (m.cmd === cmd) { /* the worker has seen every command sent: its word on training is the last */
      busy = m.busy;
      if (!busy) continuous = pausing = false;
    }
    showStepLine();
    drawAll();
    if (testSteps !== null && m.done) {
      testDone = true;
      window.acnTest = {steps: m.steps, loss: m.loss.slice(), probe: probe.map((r) => r.slice()), done: true};
      setStatus('test done');
    }
    refresh();
  }

  function onMessage(e) {
    const m = e.data;
    if (m.type === 'ready') {
      $('depth').max = m.maxl;
      const s = urlSettings();
      if (s) setup(s);
      if (s && testSteps !== null) command({type: 'steps', n: testSteps, final: true});
      sendChain();
    } else if (m.type === 'progress') onProgress(m);
    else if (m.type === 'chain') onChain(m);
    else if (m.type === 'error') {
      if (m.kind !== 'load' && m.gen !== gen) return; /* from networks since replaced */
      showError(m.message, m.kind);
    }
  }

  /* ---- canvases ------------------------------------------------------------------------ */
  /* The canvas at the device's resolution; drawing in CSS pixels. */
  function prep(canvas) {
    const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = '15px ' + FONT;
    ctx.lineJoin = 'round';
    return {ctx, w, h, dpr};
  }

  /* The plot area inside a canvas of w x h, given its margins. */
  function frame(c, margin) {
    return {left: margin.left, top: margin.top,
            width: Math.max(10, c.w - margin.left - margin.right), height: Math.max(10, c.h - margin.top - margin.bottom)};
  }

  function niceStep(range, count) {
    const raw = range / Math.max(1, count), p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
  }

  function marker(ctx, kind, x, y, r) {
    ctx.beginPath();
    if (kind === 'square') ctx.rect(x - r, y - r, 2 * r, 2 * r);
    else if (kind === 'triangle') {
      ctx.moveTo(x, y - 1.2 * r);
      ctx.lineTo(x + 1.1 * r, y + 0.8 * r);
      ctx.lineTo(x - 1.1 * r, y + 0.8 * r);
      ctx.closePath();
    } else ctx.arc(x, y, r, 0, 2 * Math.PI);
    ctx.fill();
  }

  /* Grid, ticks, labels and frame of a chart; returns its plot area with X
   * and Y, the mappings from data to pixels. */
  function axes(c, o) {
    const ctx = c.ctx, plot = frame(c, CHART_MARGIN);
    const ly = (v) => (o.logY ? Math.log10(v) : v);
    const y0 = ly(o.ymin), y1 = ly(o.ymax);
    plot.X = (v) => plot.left + (v - o.xmin) / (o.xmax - o.xmin || 1) * plot.width;
    plot.Y = (v) => plot.top + plot.height - (ly(v) - y0) / (y1 - y0 || 1) * plot.height;
    const right = plot.left + plot.width, bottom = plot.top + plot.height;
    ctx.strokeStyle = '#e3e3e3';
    ctx.fillStyle = INK;
    ctx.lineWidth = 1;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (const t of o.yticks) {
      const y = Math.round(plot.Y(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(plot.left, y); ctx.lineTo(right, y); ctx.stroke();
      ctx.fillText(o.yfmt ? o.yfmt(t) : String(t), plot.left - 6, y);
    }
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (const t of o.xticks) {
      const x = Math.round(plot.X(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, plot.top); ctx.lineTo(x, bottom); ctx.stroke();
      ctx.fillText(String(t), x, bottom + 5);
    }
    ctx.strokeStyle = '#444';
    ctx.strokeRect(plot.left + 0.5, plot.top + 0.5, plot.width, plot.height);
    ctx.font = '16px ' + FONT;
    ctx.fillText(o.xlabel, plot.left + plot.width / 2, bottom + 27);
    ctx.save();
    ctx.translate(16, plot.top + plot.height / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textBaseline = 'middle';
    ctx.fillText(o.ylabel, 0, 0);
    ctx.restore();
    ctx.font = '15px ' + FONT;
    return plot;
  }

  function legend(ctx, x, y) {
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.font = '16px ' + FONT;
    NETS.forEach((name, n) => {
      ctx.strokeStyle = ctx.fillStyle = COLORS[n];
      ctx.lineWidth = 2.5;
      ctx.setLineDash(DASH[n]);
      ctx.beginPath(); ctx.moveTo(x, y); ctx.lineTo(x + 30, y); ctx.stroke();
      ctx.setLineDash([]);
      marker(ctx, MARK[n], x + 15, y, 4.5);
      ctx.fillStyle = INK;
      ctx.fillText(name, x + 36, y);
      x += 48 + ctx.measureText(name).width;
    });
    ctx.font = '15px ' + FONT;
  }

  /* One network's line (its colour, dash and marker) through the points xs, ys. */
  function series(ctx, plot, xs, ys, n, withMarkers) {
    ctx.strokeStyle = ctx.fillStyle = COLORS[n];
    ctx.lineWidth = n === 2 ? 3 : 2.5;
    ctx.setLineDash(DASH[n]);
    ctx.beginPath();
    for (let i = 0; i < xs.length; i++) {
      if (i === 0) ctx.moveTo(plot.X(xs[i]), plot.Y(ys[i]));
      else ctx.lineTo(plot.X(xs[i]), plot.Y(ys[i]));
    }
    ctx.stroke();
    ctx.setLineDash([]);
    if (withMarkers) for (let i = 0; i < xs.length; i++) marker(ctx, MARK[n], plot.X(xs[i]), plot.Y(ys[i]), 4);
  }

  function noDataYet(ctx, area) {
    ctx.fillStyle = '#888';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText('no training yet', area.left + area.width / 2, area.top + area.height / 2);
  }

  /* ---- (a) the probe curve, with the cut at k ----------------------------------------------- */
  function shownDepth() { return cur ? Math.max(1, cur.depth) : DEFAULT_DEPTH; }
  function cutK() { return parseInt($('cut').value, 10); }

  /* chance (10%): a dashed line, labelled in the right margin */
  function drawChance(ctx, plot, depth) {
    const y = plot.Y(10);
    ctx.setLineDash([4, 4]);
    ctx.strokeStyle = '#888';
    ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(plot.X(0), y); ctx.lineTo(plot.X(depth), y); ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = MUTED;
    ctx.font = '13px ' + FONT;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.fillText('chance', plot.left + plot.width + 5, y);
    ctx.font = '15px ' + FONT;
  }

  /* the blocks a cut at k removes, shaded */
  function shadeCut(ctx, plot, k, depth) {
    if (k >= depth) return;
    ctx.fillStyle = 'rgba(0,0,0,0.06)';
    ctx.fillRect(plot.X(k), plot.top, plot.X(depth) - plot.X(k), plot.height);
  }

  /* the cut: a line at k, labelled above the plot */
  function drawCut(ctx, plot, k) {
    const x = plot.X(k);
    ctx.strokeStyle = INK;
    ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(x, plot.top - 6); ctx.lineTo(x, plot.top + plot.height); ctx.stroke();
    ctx.font = 'bold 15px ' + FONT;
    const label = 'cut at k = ' + k, width = ctx.measureText(label).width;
    const lx = Math.min(Math.max(x - width / 2, plot.left), plot.left + plot.width + CHART_MARGIN.right - width - 2);
    ctx.fillStyle = INK;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'bottom';
    ctx.fillText(label, lx, plot.top - 8);
    ctx.font = '15px ' + FONT;
  }

  function drawProbe() {
    const c = prep($('probe-chart')), ctx = c.ctx, depth = shownDepth(), k = cutK();
    const xticks = [], step = Math.max(1, niceStep(depth, 12));
    for (let t = 0; t <= depth; t += step) xticks.push(t);
    const plot = axes(c, {xmin: 0, xmax: depth, ymin: 0, ymax: 100, xticks, yticks: [0, 20, 40, 60, 80, 100],
                          xlabel: 'blocks kept (k)', ylabel: 'test accuracy (%)'});
    shadeCut(ctx, plot, k, depth);
    drawChance(ctx, plot, depth);
    if (probe) {
      const xs = [];
      for (let i = 0; i <= depth; i++) xs.push(i);
      for (let n = 0; n < 3; n++) series(ctx, plot, xs, probe[n].slice(0, depth + 1), n, depth <= 24);
    }
    drawCut(ctx, plot, k);
    legend(ctx, plot.left + 4, 14);
  }

  function drawCutReadout() {
    const el = $('cut-readout');
    if (!probe || !cur) { el.textContent = ''; return; }
    const k = cutK(), depth = cur.depth;
    el.innerHTML = '<span class="item">step ' + probeStep + ', kept ' + k + ' of ' + depth + ' blocks (' + Math.round(100 * k / depth) +
      '% of the block weights):</span> ' + NETS.map((name, n) =>
      '<span class="item"><span class="swatch ' + NET_CLASS[n] + '"></span>' + name + ' <span class="v">' +
      probe[n][k].toFixed(1) + '%</span>' +
      (k < depth ? ' <span class="note">(full: ' + probe[n][depth].toFixed(1) + '%)</span>' : '') + '</span>').join(' ');
  }

  /* ---- (b) the training loss, log y ---------------------------------------------------------- */
  function drawLoss() {
    const c = prep($('loss-chart')), ctx = c.ctx, xs = hist ? hist.steps : [];
    let lo = Infinity, hi = -Infinity;
    if (hist) for (const losses of hist.loss) for (const v of losses) {
      if (v > 0 && isFinite(v)) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
    if (!(lo < Infinity)) { lo = 0.1; hi = 3; }
    const e0 = Math.floor(Math.log10(lo)), e1 = Math.max(e0 + 1, Math.ceil(Math.log10(hi)));
    const yticks = [];
    for (let e = e0; e <= e1; e++) {
      yticks.push(Math.pow(10, e));
      if (e1 - e0 <= 2 && e < e1) yticks.push(2 * Math.pow(10, e), 5 * Math.pow(10, e));
    }
    const xmax = Math.max(10, steps), step = niceStep(xmax, 8), xticks = [];
    for (let t = 0; t <= xmax + 1e-9; t += step) xticks.push(Math.round(t));
    const ymin = Math.pow(10, e0);
    const plot = axes(c, {xmin: 0, xmax, ymin, ymax: Math.pow(10, e1), logY: true, xticks, yticks,
                          yfmt: (v) => (v >= 1 ? String(v) : v.toPrecision(1)),
                          xlabel: 'training step', ylabel: 'training loss'});
    if (xs.length) {
      ctx.save();
      ctx.beginPath(); ctx.rect(plot.left, plot.top, plot.width, plot.height); ctx.clip();
      for (let n = 0; n < 3; n++) series(ctx, plot, xs, hist.loss[n].map((v) => Math.max(v, ymin)), n, xs.length <= 40);
      ctx.restore();
    } else noDataYet(ctx, plot);
    legend(ctx, plot.left + 4, 14);
  }

  /* ---- (c) the heat maps and their colour bar --------------------------------------------------
   * log10 of the gradient norms on a viridis-like scale shared by the three maps. */
  const VIRIDIS = [[68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142], [31, 158, 137],
                   [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37]];
  function colormap(t) {
    const u = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
    const i = Math.min(VIRIDIS.length - 2, Math.floor(u)), f = u - i, a = VIRIDIS[i], b = VIRIDIS[i + 1];
    return [0, 1, 2].map((j) => a[j] + f * (b[j] - a[j]));
  }

  /* [lowest, highest] log10 of one network's norms over the run, or null before any. */
  function ownRange(n) {
    let lo = Infinity, hi = -Infinity;
    if (hist) for (const col of hist.gnorm[n]) for (const v of col) if (v > 0 && isFinite(v)) {
      const l = Math.log10(v);
      lo = Math.min(lo, l);
      hi = Math.max(hi, l);
    }
    return lo < Infinity ? [lo, hi] : null;
  }
  /* The shared scale: all three maps' ranges, at most 8 decades (below that, the darkest colour). */
  function sharedRange(ranges) {
    const known = ranges.filter((r) => r);
    if (!known.length) return null;
    const hi = Math.max(...known.map((r) => r[1]));
    const lo = Math.max(Math.min(...known.map((r) => r[0])), hi - 8);
    return hi - lo < 0.5 ? [lo - 0.25, hi + 0.25] : [lo, hi];
  }
  function fmtNorm(v) {
    return v >= 0.01 && v < 1000 ? String(Number(v.toPrecision(2))) : v.toExponential(0).replace('e+', 'e');
  }

  /* the network's name, and its own range over the run */
  function heatTitle(ctx, n, plot, own) {
    ctx.fillStyle = COLORS[n];
    ctx.font = 'bold 17px ' + FONT;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.fillText(NETS[n], plot.left, 14);
    if (own) {
      ctx.fillStyle = MUTED;
      ctx.font = '13px ' + FONT;
      ctx.textAlign = 'right';
      ctx.fillText(fmtNorm(Math.pow(10, own[0])) + ' to ' + fmtNorm(Math.pow(10, own[1])) + ' (' +
                   (own[1] - own[0]).toFixed(1) + ' decades)', plot.left + plot.width, 14);
    }
    ctx.font = '15px ' + FONT;
  }

  /* The map, one device pixel column at a time: the column of the chunk that covers its step. */
  function heatPixels(ctx, c, plot, cols, xs, depth, range) {
    const W = Math.max(1, Math.round(plot.width * c.dpr)), H = Math.max(1, Math.round(plot.height * c.dpr));
    const img = ctx.createImageData(W, H), data = img.data, total = xs[xs.length - 1], rgb = [];
    let j = 0;
    for (let px = 0; px < W; px++) {
      const s = (px + 0.5) / W * total;
      while (j < xs.length - 1 && xs[j] < s) j++;
      for (let b = 0; b < depth; b++) {
        const v = cols[j][b];
        rgb[b] = colormap(v > 0 ? (Math.log10(v) - range[0]) / (range[1] - range[0]) : 0);
      }
      for (let py = 0; py < H; py++) {
        const block = depth - 1 - Math.min(depth - 1, Math.floor((py + 0.5) / H * depth)); /* block 1 at the bottom */
        const k = 4 * (py * W + px), col = rgb[block];
        data[k] = col[0]; data[k + 1] = col[1]; data[k + 2] = col[2]; data[k + 3] = 255;
      }
    }
    ctx.putImageData(img, Math.round(plot.left * c.dpr), Math.round(plot.top * c.dpr));
  }

  /* frame, block ticks (1 at the bottom) and step ticks */
  function heatAxes(ctx, plot, depth, lastStep) {
    const bottom = plot.top + plot.height;
    ctx.strokeStyle = '#444';
    ctx.lineWidth = 1;
    ctx.strokeRect(plot.left + 0.5, plot.top + 0.5, plot.width, plot.height);
    ctx.fillStyle = INK;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    const every = Math.max(1, niceStep(depth, 8)), ticks = [1];
    for (let t = every; t <= depth; t += every) if (t !== 1) ticks.push(t);
    if (ticks[ticks.length - 1] !== depth && depth - ticks[ticks.length - 1] >= every / 2) ticks.push(depth);
    for (const b of ticks) ctx.fillText(String(b), plot.left - 5, bottom - (b - 0.5) / depth * plot.height);
    ctx.save();
    ctx.translate(14, plot.top + plot.height / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = 'center';
    ctx.fillText('block (1 = bottom)', 0, 0);
    ctx.restore();
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    if (lastStep > 0) {
      const st = niceStep(lastStep, 4);
      for (let q = 0; q <= lastStep + 1e-9; q += st)
        ctx.fillText(String(Math.round(q)), plot.left + q / lastStep * plot.width, bottom + 4);
    }
    ctx.fillText('training step', plot.left + plot.width / 2, bottom + 24);
  }

  function drawHeat(n, own, shared) {
    const c = prep($('heat-' + n)), ctx = c.ctx, plot = frame(c, HEAT_MARGIN), depth = shownDepth();
    const cols = hist ? hist.gnorm[n] : [], xs = hist ? hist.steps : [];
    heatTitle(ctx, n, plot, own);
    if (cols.length && shared) heatPixels(ctx, c, plot, cols, xs, depth, shared);
    else {
      ctx.fillStyle = '#f2f2f2';
      ctx.fillRect(plot.left, plot.top, plot.width, plot.height);
      noDataYet(ctx, plot);
    }
    heatAxes(ctx, plot, depth, xs.length ? xs[xs.length - 1] : 0);
  }

  /* A label on the colour bar: 1e-4, 0.01, 1, 1e4. */
  function decadeLabel(e) {
    if (e >= 0 && e <= 3) return String(Math.pow(10, e));
    if (e >= -2 && e < 0) return Math.pow(10, e).toFixed(-e);
    return '1e' + e;
  }

  /* the shared scale, beside the maps and as tall as their plot areas */
  function drawColorbar(range) {
    const c = prep($('colorbar')), ctx = c.ctx, x = 8, barWidth = 20;
    const top = HEAT_MARGIN.top, height = Math.max(10, c.h - HEAT_MARGIN.top - HEAT_MARGIN.bottom);
    ctx.fillStyle = INK;
    ctx.font = '14px ' + FONT;
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    ctx.fillText('|grad|', 4, 14);
    for (let i = 0; i < height; i++) {
      ctx.fillStyle = 'rgb(' + colormap(range ? 1 - (i + 0.5) / height : 0.5).map(Math.round).join(',') + ')';
      ctx.fillRect(x, top + i, barWidth, 1.5);
    }
    ctx.strokeStyle = '#444';
    ctx.strokeRect(x + 0.5, top + 0.5, barWidth, height);
    if (!range) return;
    ctx.fillStyle = INK;
    const span = range[1] - range[0], every = span > 4 ? 2 : 1;
    const Y = (l) => top + height - (l - range[0]) / span * height;
    const decades = [];
    for (let e = Math.ceil(range[0]); e <= range[1] + 1e-9; e++) if (((e % every) + every) % every === 0) decades.push(e);
    if (decades.length >= 2) {
      for (const e of decades) {
        ctx.fillRect(x + barWidth, Y(e), 5, 1);
        ctx.fillText(decadeLabel(e), x + barWidth + 8, Y(e));
      }
    } else {
      for (const l of [range[0], (range[0] + range[1]) / 2, range[1]]) {
        ctx.fillRect(x + barWidth, Y(l), 5, 1);
        ctx.fillText(Math.pow(10, l).toPrecision(2), x + barWidth + 8, Y(l));
      }
    }
    ctx.font = '13px ' + FONT;
    ctx.fillText('log scale', 4, top + height + 30);
  }

  function drawHeats() {
    const own = [0, 1, 2].map(ownRange), shared = sharedRange(own);
    for (let n = 0; n < 3; n++) drawHeat(n, own[n], shared);
    drawColorbar(shared);
  }

  function drawAll() {
    drawProbe();
    drawCutReadout();
    drawLoss();
    drawHeats();
  }

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawAll, 100);
  });

  /* ---- the 1-D chain: independent of the training ------------------------------------------
   * One request at a time: changes while one is out are sent when it comes back. */
  const chainW = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
  let chainX0 = 1, chainWaiting = false, chainChanged = false;
  function chainL() { return parseInt($('chain-L').value, 10); }

  function buildWeightSliders() {
    const box = $('chain-weights'), L = chainL();
    box.innerHTML = '';
    for (let i = 0; i < L; i++) {
      const label = document.createElement('label');
      label.innerHTML = '<span class="mono">w<sub>' + (i + 1) + '</sub></span>';
      const slider = document.createElement('input');
      slider.type = 'range';
      slider.min = -1.5;
      slider.max = 1.5;
      slider.step = 0.05;
      slider.value = chainW[i];
      const shown = document.createElement('span');
      shown.className = 'val mono';
      shown.textContent = chainW[i].toFixed(2);
      slider.addEventListener('input', () => {
        chainW[i] = parseFloat(slider.value);
        shown.textContent = chainW[i].toFixed(2);
        sendChain();
      });
      label.append(slider, shown);
      box.appendChild(label);
    }
  }
  function sendChain() {
    if (!worker) return;
    if (chainWaiting) { chainChanged = true; return; }
    chainWaiting = true;
    const L = chainL();
    worker.postMessage({type: 'chain', L, x0: chainX0, w: chainW.slice(0, L)});
  }
  $('chain-L').addEventListener('input', () => {
    $('chain-L-val').textContent = $('chain-L').value;
    buildWeightSliders();
    sendChain();
  });
  /* x0: an empty or unfinished entry keeps the last number (and is marked) */
  $('chain-x0').addEventListener('input', () => {
    const box = $('chain-x0'), v = box.valueAsNumber;
    if (box.value.trim() === '' || !isFinite(v)) {
      markField(box, $('x0-error'), 'not a number: the table keeps x0 = ' + chainX0);
      return;
    }
    markField(box, $('x0-error'), null);
    chainX0 = v;
    sendChain();
  });
  $('chain-reset').addEventListener('click', () => {
    chainW.fill(0.5);
    buildWeightSliders();
    sendChain();
  });

  function fmt(v) {
    if (!isFinite(v)) return String(v);
    if (v === 0) return '0';
    const a = Math.abs(v);
    return a >= 1e4 || a < 1e-3 ? v.toExponential(3) : v.toFixed(4);
  }
  function nearlyEqual(a, b) { return Math.abs(a - b) <= 1e-4 * Math.max(1, Math.abs(a), Math.abs(b)); }

  /* The answer to a request, drawn with the L, x0 and weights it was computed for. */
  function onChain(m) {
    chainWaiting = false;
    if (chainChanged) {
      chainChanged = false;
      sendChain();
    }
    $('chain-error').hidden = !m.error;
    if (m.error) {
      $('chain-error').textContent = 'chain: ' + m.error;
      return;
    }
    $('chain-y').innerHTML = 'x<sub>0</sub> = ' + fmt(m.x0) + ', y: ' + NETS.map((name, n) =>
      '<span class="c-' + NET_CLASS[n] + '">' + name + ' ' + fmt(m.y[n]) + '</span>').join(' &nbsp; ');
    let h = '<tr><th rowspan="2">block i</th><th rowspan="2">w<sub>i</sub></th>' +
      '<th colspan="2" class="c-plain sep">plain dy/dw<sub>i</sub></th>' +
      '<th colspan="2" class="c-residual sep">residual dy/dw<sub>i</sub></th>' +
      '<th colspan="4" class="c-acn sep">ACN dy/dw<sub>i</sub> = DG<sub>i</sub> + FG<sub>i</sub></th></tr>' +
      '<tr><th class="sep">autograd</th><th>closed form</th><th class="sep">autograd</th><th>closed form</th>' +
      '<th class="sep">autograd</th><th>closed form</th><th>DG<sub>i</sub> (direct)</th><th>FG<sub>i</sub> (forward)</th></tr>';
    const td = (v, other, cls) => {
      const bad = other !== undefined && !nearlyEqual(v, other);
      return '<td class="' + (cls || '') + (bad ? ' bad' : '') + '">' + fmt(v) + '</td>';
    };
    m.rows.forEach((r, i) => {
      h += '<tr><td>' + (i + 1) + '</td><td>' + m.w[i].toFixed(2) + '</td>' +
        td(r[0], r[1], 'sep') + td(r[1], r[0]) + td(r[2], r[3], 'sep') + td(r[3], r[2]) +
        td(r[4], r[5], 'sep') + td(r[5], r[4]) + td(r[6]) + td(r[7]) + '</tr>';
    });
    $('chain-table').innerHTML = h;
  }

  /* ---- start ----------------------------------------------------------------------------------- */
  buildWeightSliders();
  drawAll();
  refresh();
  try {
    worker = new Worker('app.js');
  } catch (err) {
    showError('cannot start the worker (' + (err && err.message ? err.message : err) + ')', 'load');
    return;
  }
  worker.onmessage = onMessage;
  worker.onerror = (e) => {
    if (e.preventDefault) e.preventDefault();
    showError('the worker failed' + (e.message ? ': ' + e.message : ' to load app.js'),
              location.protocol === 'file:' ? 'load' : undefined);
  };
  refresh();
}
