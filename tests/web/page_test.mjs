// The browser test of the teaching page (examples/web, built into build/web by `make web`).
// Serves build/web on 127.0.0.1 (a small static server, here), opens the page in headless Chromium
// (Debian's, through playwright-core) with ?test=STEPS and the settings given, waits until the page
// has trained STEPS steps, and prints what it read back as one JSON line:
//   {"steps": N, "loss": [3], "probe": [[depth + 1] x 3], "console_errors": [...], "screenshot": PATH}
// Exit 0 when the page finished; 1 with a message otherwise (the page's error, a timeout).
//   node tests/web/page_test.mjs BUILD_WEB_DIR SCREENSHOT STEPS DEPTH WIDTH LR SEED
// (the screenshot is of the whole page; with ACN_SHOT_VIEWPORT=1, of the first 1280 x 1000 pixels)
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";
import { chromium } from "playwright-core";

const [dir, shot, steps, depth, width, lr, seed] = process.argv.slice(2);
if (!seed) {
    console.error("usage: node page_test.mjs BUILD_WEB_DIR SCREENSHOT STEPS DEPTH WIDTH LR SEED");
    process.exit(2);
}
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
const url = `http://127.0.0.1:${server.address().port}/index.html?test=${steps}&depth=${depth}&width=${width}&lr=${lr}&seed=${seed}`;
const exe = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath: exe, args: ["--no-sandbox", "--disable-gpu"] });
const errors = [];
let status = 1;
try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url);
    await page.waitForFunction(() => window.acnTest && (window.acnTest.done || window.acnTest.error), null, { timeout: 180000 });
    const r = await page.evaluate(() => window.acnTest);
    await page.waitForTimeout(300); // the last frame drawn
    await page.screenshot({ path: shot, fullPage: !process.env.ACN_SHOT_VIEWPORT }); // (the viewport alone: for README)
    if (r.error) {
        console.error("the page reported: " + r.error);
    } else {
        console.log(JSON.stringify({ steps: r.steps, loss: r.loss, probe: r.probe, console_errors: errors, screenshot: shot }));
        status = 0;
    }
} catch (e) {
    console.error("page_test: " + e.message + (errors.length ? "\nconsole errors: " + errors.join("\n") : ""));
} finally {
    await browser.close();
    server.close();
}
process.exit(status);
