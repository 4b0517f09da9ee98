// The browser test of the teaching page (examples/web, built into build/web by `make web`).
// Serves build/web on 127.0.0.1 (a small static server, here), starts headless Chromium (Debian's)
// and drives it over the DevTools protocol through a pipe (--remote-debugging-pipe: JSON messages
// ended by a NUL byte on file descriptors 3 and 4; no library, no WebSocket), opens the page with
// ?test=STEPS and the settings given, waits until the page has trained STEPS steps, and prints what
// it read back as one JSON line:
//   {"steps": N, "loss": [3], "probe": [[depth + 1] x 3], "console_errors": [...], "screenshot": PATH}
// Exit 0 when the page finished; 1 with a message otherwise (the page's error, a timeout).
//   node tests/web/page_test.mjs BUILD_WEB_DIR SCREENSHOT STEPS DEPTH WIDTH LR SEED
// The screenshot is of the whole page; with ACN_SHOT_VIEWPORT=1, of the first 1280 x 1000 pixels
// (for README). CHROMIUM names the browser (default /usr/bin/chromium).
import { createServer } from "node:http";
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";

const [dir, shot, steps, depth, width, lr, seed] = process.argv.slice(2);
if (!seed) {
    console.error("usage: node page_test.mjs BUILD_WEB_DIR SCREENSHOT STEPS DEPTH WIDTH LR SEED");
    process.exit(2);
}

// ---- the static server --------------------------------------------------------------------
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".png": "image/png" };
const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    try {
        const body = await readFile(join(dir, path === "/" ? "index.html" : path));
        res.writeHead(200, { "Content-Type": types[extname(path)] || "application/octet-stream" });
        res.end(body);
    } catch {
        res.writeHead(404);
        res.end("not found");
    }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const url = `http://127.0.0.1:${server.address().port}/index.html?test=${steps}&depth=${depth}&width=${width}` +
    `&lr=${lr}&seed=${seed}`;

// ---- the browser and its protocol ----------------------------------------------------------
const exe = process.env.CHROMIUM || "/usr/bin/chromium";
const chrome = spawn(exe, ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
    "--remote-debugging-pipe", "about:blank"], { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
let chromeErr = "";
chrome.stderr.on("data", (d) => { chromeErr += d; });
const toChrome = chrome.stdio[3], fromChrome = chrome.stdio[4];
let nextId = 1, buffered = "";
const waiting = new Map(), listeners = [];
fromChrome.on("data", (chunk) => {
    buffered += chunk.toString("utf8");
    let end;
    while ((end = buffered.indexOf("\0")) >= 0) {
        const msg = JSON.parse(buffered.slice(0, end));
        buffered = buffered.slice(end + 1);
        if (msg.id && waiting.has(msg.id)) {
            const { ok, fail, method } = waiting.get(msg.id);
            waiting.delete(msg.id);
            if (msg.error) fail(new Error(method + ": " + msg.error.message));
            else ok(msg.result);
        } else if (msg.method) {
            for (const f of listeners) f(msg);
        }
    }
});
// send(METHOD, PARAMS, SESSION): the result, or an error
function send(method, params = {}, sessionId) {
    const id = nextId++;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((ok, fail) => {
        waiting.set(id, { ok, fail, method });
        toChrome.write(JSON.stringify(msg) + "\0");
    });
}
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

let status = 1;
const errors = [];
const deadline = Date.now() + 180000;
try {
    const { targetId } = await send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
    listeners.push((m) => {
        if (m.sessionId !== sessionId) return;
        if (m.method === "Runtime.consoleAPICalled" && m.params.type === "error")
            errors.push(m.params.args.map((a) => a.value ?? a.description ?? "").join(" "));
        if (m.method === "Runtime.exceptionThrown") errors.push(m.params.exceptionDetails.exception?.description ??
            m.params.exceptionDetails.text);
    });
    await send("Runtime.enable", {}, sessionId);
    await send("Page.enable", {}, sessionId);
    await send("Emulation.setDeviceMetricsOverride", { width: 1280, height: 1000, deviceScaleFactor: 1, mobile: false },
        sessionId);
    await send("Page.navigate", { url }, sessionId);
    let r = null;
    while (Date.now() < deadline) { // the page sets window.acnTest when it is done (or failed)
        const { result } = await send("Runtime.evaluate",
            { expression: "JSON.stringify(window.acnTest || null)", returnByValue: true }, sessionId);
        r = result.value ? JSON.parse(result.value) : null;
        if (r && (r.done || r.error)) break;
        await sleep(200);
    }
    if (!r || !(r.done || r.error)) throw new Error("the page did not finish within 180 s");
    await sleep(300); // the last frame drawn
    if (!process.env.ACN_SHOT_VIEWPORT) {
        const m = await send("Page.getLayoutMetrics", {}, sessionId);
        const h = Math.ceil((m.cssContentSize || m.contentSize).height);
        await send("Emulation.setDeviceMetricsOverride", { width: 1280, height: h, deviceScaleFactor: 1, mobile: false },
            sessionId);
        await sleep(300);
    }
    const { data } = await send("Page.captureScreenshot", { format: "png" }, sessionId);
    await writeFile(shot, Buffer.from(data, "base64"));
    if (r.error) {
        console.error("the page reported: " + r.error);
    } else {
        console.log(JSON.stringify({ steps: r.steps, loss: r.loss, probe: r.probe, console_errors: errors, screenshot: shot }));
        status = 0;
    }
} catch (e) {
    console.error("page_test: " + e.message + (errors.length ? "\nconsole errors: " + errors.join("\n") : "") +
        (chromeErr ? "\nchromium said: " + chromeErr.slice(-2000) : ""));
} finally {
    try { await Promise.race([send("Browser.close"), sleep(3000)]); } catch { /* it is going anyway */ }
    chrome.kill();
    server.close();
}
process.exit(status);
