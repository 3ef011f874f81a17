// End-to-end browser tests of mock-srv's web app (static/): node's built-in test
// runner + playwright-core driving Debian's Chromium (/usr/bin/chromium), no browser
// download. Every scenario starts its own server (`--port 0`) and its own pages, and
// stops them even when it fails; a failing scenario leaves a screenshot and the console
// log of each of its pages (and the server's log) in tests/e2e/artifacts/.
//
// Run: bash tests/e2e/run.sh [path/to/mock-srv]
//  or: MOCK_SRV_BIN=target/release/mock-srv node --test tests/e2e/
// Env: MOCK_SRV_ARGS extra server flags ("--static static": the working copy of the app),
//      CHROMIUM another browser binary.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.join(HERE, "artifacts");
const BIN = path.resolve(process.env.MOCK_SRV_BIN ?? path.join(HERE, "../../target/release/mock-srv"));
const SERVER_ARGS = (process.env.MOCK_SRV_ARGS ?? "").split(/\s+/).filter(Boolean); // e.g. --static static
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
];
const WAIT = 5000; // deadline for anything the page should show
const LIVE = 1000; // deadline for a pushed update to show up

// ---- helpers: server ------------------------------------------------------

const servers = new Set(); // every server started and not yet stopped

// Starts the binary on `port` (0: a free one); resolves once it says where it listens.
function startServer(port = 0, args = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, [...SERVER_ARGS, ...args, "--port", String(port)], { stdio: ["ignore", "pipe", "pipe"] });
    const server = { child, port: 0, url: "", log: "" };
    servers.add(server);
    child.stderr.on("data", (d) => (server.log += d));
    child.on("error", (e) => reject(new Error(`cannot start ${BIN}: ${e.message}`)));
    child.on("exit", (code, sig) => {
      servers.delete(server);
      reject(new Error(`${BIN} exited (${code ?? sig}) before listening:\n${server.log}`));
    });
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${BIN} did not say where it listens within ${WAIT} ms:\n${server.log}`));
    }, WAIT);
    let out = "";
    child.stdout.on("data", (d) => {
      const m = (out += d).match(/mock-srv listening on (http:\/\/127\.0\.0\.1:(\d+))/);
      if (!m || server.url) return;
      clearTimeout(timer);
      Object.assign(server, { url: m[1], port: Number(m[2]) });
      resolve(server);
    });
  });
}

// SIGTERM, then waits for the process to be gone (SIGKILL after WAIT ms).
function stopServer(server) {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), WAIT);
    child.once("exit", () => (clearTimeout(timer), servers.delete(server), resolve()));
    child.kill("SIGTERM");
  });
}

async function post(server, urlPath, body) {
  const res = await fetch(server.url + urlPath, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.ok(res.ok, `POST ${urlPath} -> ${res.status} ${await res.text()}`);
}
const postOrder = (server, id, amount) => post(server, `/orders/${id}`, { amount });

// ---- helpers: browser and pages -------------------------------------------

let contextPromise = null; // one browser for the whole file, with a fresh profile
let profile = null;

function browserContext() {
  contextPromise ??= (async () => {
    profile = fs.mkdtempSync(path.join(os.tmpdir(), "mock-srv-e2e-"));
    try {
      return await chromium.launchPersistentContext(profile, {
        executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: 30000,
        viewport: { width: 900, height: 600 },
      });
    } catch (e) {
      throw new Error(`e2e: the browser cannot start (${CHROMIUM}): ${e.message}`);
    }
  })();
  return contextPromise;
}

// Opens the app in a new page and records what it logs, its dialogs and its WebSockets.
async function openPage(env, server, label = `page${env.pages.length + 1}`) {
  const page = await (await browserContext()).newPage();
  const p = { page, label, console: [], dialogs: [], sockets: [], frames: [] };
  env.pages.push(p);
  page.on("console", (m) => p.console.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => p.console.push(`pageerror: ${e.message}`));
  page.on("dialog", (d) => (p.dialogs.push(`${d.type()}: ${d.message()}`), d.dismiss()));
  page.on("websocket", (ws) => {
    p.sockets.push(ws.url());
    ws.on("framereceived", (f) => p.frames.push(String(f.payload)));
  });
  await page.goto(server.url + "/");
  await page.waitForSelector("#category");
  return p;
}

const ordersSel = (id) => `#products product-item[data-id="${id}"] > [slot="orders"]`;

// What an item's orders slot says right now (null: no such item or total yet).
const orders = (page, id) =>
  page.evaluate((sel) => document.querySelector(sel)?.textContent ?? null, ordersSel(id));

// page.waitForFunction, failing with `what` and what the page shows instead.
async function waitFor(page, what, fn, arg, timeout, shows) {
  try {
    await page.waitForFunction(fn, arg, { timeout });
  } catch (e) {
    const now = await shows().catch(() => "?");
    throw new Error(`${what} within ${timeout} ms; the page shows ${JSON.stringify(now)}\n(${e.message.split("\n")[0]})`);
  }
}

const waitOrders = (page, id, value, timeout = WAIT) =>
  waitFor(page, `${id} did not show ${value} orders`,
    ([sel, v]) => document.querySelector(sel)?.textContent === v, [ordersSel(id), String(value)], timeout,
    () => orders(page, id));

const waitStatus = (page, state, timeout = WAIT) =>
  waitFor(page, `#status did not become "${state}"`,
    (s) => document.querySelector("#status").dataset.state === s, state, timeout,
    () => page.$eval("#status", (el) => el.dataset.state));

// Chooses a category and waits until its products and totals are shown, and the socket is live.
async function choose(page, category, expected) {
  await page.selectOption("#category", category);
  for (const [id, total] of Object.entries(expected)) await waitOrders(page, id, total);
  await waitStatus(page, "live");
}

// Records every change of an orders slot as "id=text" in window.__orderChanges.
const watchOrders = (page) =>
  page.evaluate(() => {
    window.__orderChanges = [];
    new MutationObserver((records) => {
      for (const r of records) {
        const node = r.target.nodeType === Node.TEXT_NODE ? r.target.parentElement : r.target;
        const spans = [...r.addedNodes].flatMap((n) =>
          n.matches?.('[slot="orders"]') ? [n] : [...(n.querySelectorAll?.('[slot="orders"]') ?? [])]);
        if (node?.matches('[slot="orders"]')) spans.push(node);
        for (const s of new Set(spans)) window.__orderChanges.push(`${s.parentElement?.dataset.id}=${s.textContent}`);
      }
    }).observe(document.querySelector("#products"), { childList: true, subtree: true, characterData: true });
  });
const orderChanges = (page) => page.evaluate(() => window.__orderChanges);

// ---- helpers: one scenario ------------------------------------------------

// A test with its own servers and pages, all stopped afterwards; on failure it saves
// a screenshot and the console log of each page, and each server's log, to ARTIFACTS.
function scenario(name, fn) {
  test(name, { timeout: 30000 }, async (t) => {
    const env = { t, servers: [], pages: [] };
    env.start = async (port, args) => {
      const s = await startServer(port, args);
      env.servers.push(s);
      return s;
    };
    env.open = (server, label) => openPage(env, server, label);
    try {
      await fn(env);
    } catch (err) {
      const saved = await saveArtifacts(name, env);
      for (const file of saved) t.diagnostic(`artifact: ${file}`);
      if (saved.length) err.message += `\nartifacts:\n${saved.map((f) => `  ${f}`).join("\n")}`;
      throw err;
    } finally {
      await Promise.all(env.pages.map((p) => p.page.close().catch(() => {})));
      await Promise.all(env.servers.map(stopServer));
    }
  });
}

async function saveArtifacts(name, env) {
  const slug = name.toLowerCase().match(/[a-z0-9]+/g).slice(0, 5).join("-"); // "1-page-loads-each-category"
  const saved = [];
  const save = (file, write) => {
    const full = path.join(ARTIFACTS, `${slug}-${file}`);
    try {
      write(full);
      saved.push(full);
    } catch (e) {
      saved.push(`${full} (not saved: ${e.message})`);
    }
  };
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  for (const p of env.pages) {
    const png = await p.page.screenshot({ fullPage: true, timeout: WAIT }).catch((e) => e);
    save(`${p.label}.png`, (f) => {
      if (png instanceof Error) throw png;
      fs.writeFileSync(f, png);
    });
    save(`${p.label}.console.log`, (f) =>
      fs.writeFileSync(f, [...p.console, ...p.dialogs.map((d) => `dialog ${d}`)].join("\n") + "\n"));
  }
  env.servers.forEach((s, i) => save(`server${i + 1}.log`, (f) => fs.writeFileSync(f, s.log)));
  return saved;
}

// Whatever happens, no server or browser outlives the run.
after(async () => {
  await Promise.all([...servers].map(stopServer));
  if (contextPromise) await (await contextPromise.catch(() => null))?.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
});
process.on("exit", () => servers.forEach((s) => s.child.kill("SIGKILL")));

// ---- scenarios --------------------------------------------------------------

scenario("1. page loads; each category shows its products and totals", async ({ start, open }) => {
  const { page } = await open(await start());
  await page.selectOption("#category", "electronics");
  await waitOrders(page, "A1", 3);
  await waitOrders(page, "A2", 7);
  const names = () => page.$$eval('#products product-item > [slot="name"]', (s) => s.map((n) => n.textContent));
  assert.deepEqual(await names(), ["Vacuum Cleaner", "Leaf Blower"]);

  await page.selectOption("#category", "confectionery");
  await waitOrders(page, "B1", 101);
  assert.deepEqual(await names(), ["Chocolate Bar"]);
});

scenario("2. an order posted elsewhere shows live; another category's does not", async ({ t, start, open }) => {
  const server = await start();
  const p = await open(server);
  const { page } = p;
  await choose(page, "electronics", { A1: 3, A2: 7 });
  await page.evaluate(() => (window.__noReload = true));

  const t0 = Date.now();
  await postOrder(server, "A1", 10);
  await waitOrders(page, "A1", 13, LIVE);
  const ms = Date.now() - t0;

  // B1 is confectionery: it must change nothing. The A1 POST after it is the proof's end.
  await watchOrders(page);
  const framesBefore = p.frames.length;
  await postOrder(server, "B1", 5);
  await postOrder(server, "A1", 1);
  await waitOrders(page, "A1", 14, LIVE);
  assert.deepEqual(await orderChanges(page), ["A1=14"]);
  assert.deepEqual(p.frames.slice(framesBefore).map((f) => JSON.parse(f)), [{ id: "A1", total: 14 }]);
  assert.equal(await orders(page, "A2"), "7");
  assert.equal(await page.evaluate(() => window.__noReload), true, "the page reloaded");
  t.diagnostic(`A1=13 shown ${ms} ms after the POST`);
});

scenario("3. a product added through the form shows 0 orders, then live totals", async ({ start, open }) => {
  const server = await start();
  const { page } = await open(server);
  await choose(page, "electronics", { A1: 3, A2: 7 });
  await page.fill('#add [name="name"]', "Desk Fan");
  await page.fill('#add [name="rrp"]', "12.50");
  await page.fill('#add [name="info"]', "Keeps you cool.");
  await page.click('#add button[type="submit"]');
  await waitOrders(page, "A3", 0);
  assert.equal(await page.textContent('product-item[data-id="A3"] > [slot="name"]'), "Desk Fan");
  assert.equal(await page.textContent('product-item[data-id="A3"] > [slot="rrp"]'), "12.50");

  await postOrder(server, "A3", 4);
  await waitOrders(page, "A3", 4, LIVE);
});

scenario("4. switching categories back and forth leaves one socket and one update per order", async ({ start, open }) => {
  const server = await start();
  const p = await open(server);
  const { page } = p;
  await choose(page, "electronics", { A1: 3, A2: 7 });
  for (let i = 0; i < 4; i++) {
    await choose(page, "confectionery", { B1: 101 });
    await choose(page, "electronics", { A1: 3, A2: 7 });
  }

  await watchOrders(page);
  const framesBefore = p.frames.length;
  await postOrder(server, "B1", 1); // not shown: must cause nothing
  await postOrder(server, "A1", 1);
  await waitOrders(page, "A1", 4, LIVE);
  assert.deepEqual(await orderChanges(page), ["A1=4"], "orders slots changed more than once");
  assert.deepEqual(p.frames.slice(framesBefore).map((f) => JSON.parse(f)), [{ id: "A1", total: 4 }]);
  assert.deepEqual(p.sockets, [`${server.url.replace("http", "ws")}/orders/electronics`],
    "the page opened more than one WebSocket");
});

scenario("5. after a server restart the page reconnects and shows the new server's totals", async ({ start, open }) => {
  const server = await start();
  const { page } = await open(server);
  await choose(page, "electronics", { A1: 3, A2: 7 });
  await postOrder(server, "A1", 10);
  await waitOrders(page, "A1", 13, LIVE);

  await stopServer(server);
  await waitStatus(page, "reconnecting");
  const restarted = await start(server.port); // same port: same origin for the page
  await waitStatus(page, "live", 15000);
  await waitOrders(page, "A1", 3); // the restarted server's totals, not the old 13
  await waitOrders(page, "A2", 7);

  await postOrder(restarted, "A1", 2);
  await waitOrders(page, "A1", 5, LIVE);
});

scenario("6. two pages open at once both see the same update", async ({ start, open }) => {
  const server = await start();
  const pages = [(await open(server)).page, (await open(server)).page];
  for (const page of pages) await choose(page, "electronics", { A1: 3, A2: 7 });
  await postOrder(server, "A2", 5);
  await Promise.all(pages.map((page) => waitOrders(page, "A2", 12, LIVE)));
});

scenario("7. HTML in a product's name is shown as text", async ({ start, open }) => {
  const server = await start();
  const p = await open(server);
  const { page } = p;
  await choose(page, "electronics", { A1: 3, A2: 7 });
  const evil = { name: "<img src=x onerror=alert(1)>", info: "<b onmouseover=alert(2)>bold</b>" };
  await page.fill('#add [name="name"]', evil.name);
  await page.fill('#add [name="rrp"]', "1");
  await page.fill('#add [name="info"]', evil.info);
  await page.click('#add button[type="submit"]');
  await waitOrders(page, "A3", 0);
  // And one added by someone else: the page learns of it over the socket and redraws.
  await post(server, "/electronics", { name: "<svg onload=alert(3)>", rrp: "2", info: "<script>alert(4)</script>" });
  await waitOrders(page, "A4", 0);

  const text = (id, slot) => page.textContent(`product-item[data-id="${id}"] > [slot="${slot}"]`);
  assert.equal(await text("A3", "name"), evil.name);
  assert.equal(await text("A3", "info"), evil.info);
  assert.equal(await text("A4", "name"), "<svg onload=alert(3)>");
  const injected = await page.evaluate(() =>
    [document.body, ...[...document.querySelectorAll("product-item")].map((item) => item.shadowRoot)]
      .flatMap((root) => [...root.querySelectorAll("img, svg, b, script")])
      .map((el) => el.outerHTML));
  assert.deepEqual(injected, []);
  assert.deepEqual(p.dialogs, []);
});

scenario("8. a data file's own categories are offered, and their totals are live", async ({ start, open }) => {
  const data = path.join(os.tmpdir(), `mock-srv-e2e-${process.pid}-books.json`);
  fs.writeFileSync(data, JSON.stringify({ categories: [
    { name: "books", prefix: "K", products: [{ id: "K1", name: "Dune", rrp: "9.99", info: "Sand.", total: 4 }] },
    { name: "board-games", prefix: "G", products: [{ id: "G1", name: "Go", rrp: "30.00", info: "Stones.", total: 2 }] },
  ] }));
  try {
    const server = await start(0, ["--data", data]);
    const { page } = await open(server, "custom");
    const offered = () => page.$$eval("#category option", (os) => os.map((o) => [o.value, o.textContent]));
    await page.waitForFunction(() => document.querySelectorAll("#category option").length === 3, null, { timeout: WAIT });
    assert.deepEqual(await offered(), [["", "Select Category"], ["books", "Books"], ["board-games", "Board games"]]);
    await choose(page, "board-games", { G1: 2 });
    await postOrder(server, "G1", 3);
    await waitOrders(page, "G1", 5, LIVE);
    await choose(page, "books", { K1: 4 });
  } finally {
    fs.rmSync(data, { force: true });
  }
});

scenario("9. while the server is away the totals are marked stale, and fresh once it is back", async ({ start, open }) => {
  const server = await start();
  const { page } = await open(server);
  assert.equal(await page.textContent("#status"), "pick a category");
  await choose(page, "electronics", { A1: 3, A2: 7 });
  const stale = () => page.$eval("#products", (el) => el.hasAttribute("data-stale"));
  assert.equal(await stale(), false);
  await stopServer(server);
  await waitStatus(page, "reconnecting");
  assert.equal(await stale(), true, "marked stale while reconnecting");
  await start(server.port);
  await waitStatus(page, "live", 15000);
  await waitOrders(page, "A1", 3);
  assert.equal(await stale(), false, "fresh once live again");
});

scenario("10. a refused field is named in words; switching category clears the form", async ({ start, open }) => {
  const server = await start();
  const { page } = await open(server);
  await choose(page, "electronics", { A1: 3, A2: 7 });
  await page.fill('#add [name="name"]', "   ");
  await page.fill('#add [name="rrp"]', "1.00");
  await page.fill('#add [name="info"]', "A blank name.");
  await page.click('#add button[type="submit"]');
  await page.waitForFunction(() => document.querySelector("#msg").textContent !== "", null, { timeout: WAIT });
  assert.equal(await page.textContent("#msg"), "Name must not be empty.");
  assert.equal(await page.getAttribute('#add [name="name"]', "aria-invalid"), "true");
  assert.equal(await page.inputValue('#add [name="info"]'), "A blank name.", "kept as typed");
  await choose(page, "confectionery", { B1: 101 });
  assert.equal(await page.inputValue('#add [name="info"]'), "");
  assert.equal(await page.textContent("#msg"), "");
  assert.equal(await page.getAttribute('#add [name="name"]', "aria-invalid"), null);
});

scenario("11. with --ws-drop-ms the app reconnects each time and its totals stay live", async ({ t, start, open }) => {
  const server = await start(0, ["--ws-drop-ms", "300"]);
  const p = await open(server);
  const { page } = p;
  await choose(page, "electronics", { A1: 3, A2: 7 });
  // Several drops, each followed by a new socket.
  for (let i = 0; i < 4; i++) await page.waitForEvent("websocket", { timeout: WAIT });
  await postOrder(server, "A1", 10);
  await waitOrders(page, "A1", 13);
  await postOrder(server, "A2", 1);
  await waitOrders(page, "A2", 8);
  await waitStatus(page, "live");
  assert.deepEqual(p.dialogs, []);
  assert.equal(await page.textContent("#msg"), "");
  t.diagnostic(`${p.sockets.length} WebSockets opened; the server dropped ${(server.log.match(/dropped on purpose/g) ?? []).length}`);
});

// Starts a redis-server of the scenario's own on a free port, in a new folder; resolves once
// it is ready. Stopped (and the folder removed) by the returned function.
async function startRedis() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mock-srv-e2e-redis-"));
  const port = await new Promise((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
  const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1",
    "--save", "", "--appendonly", "no", "--dir", dir], { stdio: ["ignore", "pipe", "ignore"] });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("redis-server did not start")), WAIT);
    let out = "";
    child.on("error", (e) => reject(new Error(`cannot start redis-server: ${e.message}`)));
    child.stdout.on("data", (d) => {
      if ((out += d).includes("Ready to accept connections")) clearTimeout(timer), resolve();
    });
  });
  const stop = () => new Promise((resolve) => {
    child.once("exit", () => (fs.rmSync(dir, { recursive: true, force: true }), resolve()));
    child.kill("SIGKILL");
  });
  return { url: `redis://127.0.0.1:${port}`, stop };
}

scenario("12. on Redis, a page on one process sees what is done through another", async ({ start, open }) => {
  const redis = await startRedis();
  try {
    const first = await start(0, ["--redis", redis.url]);
    const second = await start(0, ["--redis", redis.url]);
    const { page } = await open(first);
    await choose(page, "electronics", { A1: 3, A2: 7 });
    await postOrder(second, "A1", 10);
    await waitOrders(page, "A1", 13, LIVE);
    // A product added through the second process shows on the first's page, live.
    await post(second, "/electronics", { name: "Desk Fan", rrp: "12.50", info: "Keeps you cool." });
    await waitOrders(page, "A3", 0);
    await postOrder(second, "A3", 2);
    await waitOrders(page, "A3", 2, LIVE);
    // And the form on the first process adds through Redis too: the next id is A4.
    await page.fill('#add [name="name"]', "Heater");
    await page.fill('#add [name="rrp"]', "30.00");
    await page.fill('#add [name="info"]', "Warm.");
    await page.click('#add button[type="submit"]');
    await waitOrders(page, "A4", 0);
    const listed = await (await fetch(second.url + "/electronics")).json();
    assert.deepEqual(listed.map((p) => p.id), ["A1", "A2", "A3", "A4"]);
  } finally {
    await redis.stop();
  }
});
