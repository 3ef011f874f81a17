// mock-srv web app: choose a category, list its products (GET /<category>),
// add products (POST /<category>) and show live order totals pushed over ONE
// WebSocket (/orders/<category>) that follows the selected category and
// reconnects with exponential backoff. Plain ES module, same-origin, no build.

const WS_BASE = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}`;
const BACKOFF_MIN = 250;
const BACKOFF_MAX = 5000;

const category = document.querySelector("#category");
const products = document.querySelector("#products");
const add = document.querySelector("#add");
const msg = document.querySelector("#msg");
const status = document.querySelector("#status");

let current = "";          // selected category
let loadSeq = 0;           // bumped per product request; stale responses are dropped
const totals = new Map();  // product id -> latest order total (current category)
const unknownIds = new Set(); // ids pushed before they were drawn: fetched once

let socket = null;         // the one and only WebSocket (null while waiting to retry)
let socketCategory = "";   // category the socket is subscribed to
let backoff = BACKOFF_MIN;
let retryTimer = null;
let refetchOnOpen = false; // after a drop the server may have restarted with new data

// <product-item>: the #item template in a shadow root, filled via slots.
customElements.define(
  "product-item",
  class Item extends HTMLElement {
    constructor() {
      super();
      const tmpl = document.querySelector("#item").content;
      this.attachShadow({ mode: "open" }).appendChild(tmpl.cloneNode(true));
    }
  }
);

const setStatus = (state, text) => {
  status.dataset.state = state;
  status.textContent = text;
};

// ---- products -------------------------------------------------------------

const setOrders = (item, total) => {
  let span = item.querySelector(':scope > [slot="orders"]');
  if (!span) {
    span = document.createElement("span");
    span.slot = "orders";
    item.append(span);
  }
  span.textContent = String(total);
};

const draw = (list) => {
  products.replaceChildren(
    ...list.map((product) => {
      const item = document.createElement("product-item");
      item.dataset.id = product.id;
      for (const key of ["name", "rrp", "info"]) {
        const span = document.createElement("span");
        span.slot = key;
        span.textContent = product[key] ?? ""; // text only, never HTML
        item.append(span);
      }
      if (totals.has(String(product.id))) setOrders(item, totals.get(String(product.id)));
      return item;
    })
  );
};

// GET or POST /<category>; resolves to the product array or throws the server's message.
const request = async (cat, payload) => {
  const init = payload === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(payload),
  };
  const res = await fetch(`/${encodeURIComponent(cat)}`, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) throw new Error(data?.message || data?.error || `HTTP ${res.status}`);
  if (!Array.isArray(data)) throw new Error("unexpected response from server");
  return data;
};

const loadProducts = async () => {
  const seq = ++loadSeq;
  const cat = current;
  try {
    const list = await request(cat);
    if (seq === loadSeq) draw(list);
  } catch (err) {
    if (seq !== loadSeq) return;
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = `Could not load ${cat}: ${err.message}`;
    products.replaceChildren(p);
  }
};

// ---- live orders over a single WebSocket ----------------------------------

const onMessage = (data) => {
  let m;
  try {
    m = JSON.parse(data);
  } catch {
    return console.warn("unparseable message", data);
  }
  if (m?.error) return console.warn("server:", m.error);
  if (m?.id == null || m.total === undefined) return;
  const id = String(m.id);
  totals.set(id, m.total); // remembered in case the item is not drawn yet
  const item = products.querySelector(`product-item[data-id="${CSS.escape(id)}"]`);
  if (item) return setOrders(item, m.total);
  // A product added elsewhere (its total starts at 0): redraw the list once to show it.
  if (!unknownIds.has(id) && products.querySelector("product-item")) {
    unknownIds.add(id);
    loadProducts();
  }
};

const connect = () => {
  retryTimer = null;
  totals.clear(); // the new socket re-sends every total on open
  socketCategory = current;
  setStatus("reconnecting", refetchOnOpen ? "reconnecting…" : "connecting…");
  const ws = new WebSocket(`${WS_BASE}/orders/${encodeURIComponent(current)}`);
  socket = ws;
  ws.addEventListener("open", () => {
    if (ws !== socket) return;
    backoff = BACKOFF_MIN;
    setStatus("live", "live");
    delete products.dataset.stale; // the server sends every current total on open
    if (socketCategory !== current) subscribe(); // category changed while connecting
    if (refetchOnOpen) {
      refetchOnOpen = false;
      loadCategories(); // a restarted server may have other data
      loadProducts();
    }
  });
  ws.addEventListener("message", ({ data }) => {
    if (ws === socket) onMessage(data);
  });
  ws.addEventListener("error", () => ws.close());
  ws.addEventListener("close", () => {
    if (ws !== socket) return;
    socket = null;
    refetchOnOpen = true;
    setStatus("reconnecting", "reconnecting…");
    products.dataset.stale = "";
    retryTimer = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, BACKOFF_MAX);
  });
};

// Make sure the subscription is on `current`: open the socket the first time,
// otherwise ask the open socket to switch (or re-send fresh totals).
// While connecting / waiting to retry, the open handler takes care of it.
const subscribe = () => {
  if (!socket && !retryTimer) return connect();
  if (socket?.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify({ cmd: "update-category", payload: { category: current } }));
    socketCategory = current;
  }
};

// ---- categories -----------------------------------------------------------

// The select offers the server's own categories (GET /categories), so a server started
// with another data file works without touching the page. The options in the HTML are
// the built-in data's, kept if the list cannot be fetched.
const label = (name) => name.charAt(0).toUpperCase() + name.slice(1).replace(/[-_]/g, " ");

const loadCategories = async () => {
  try {
    const res = await fetch("/categories");
    if (!res.ok) return;
    const list = await res.json();
    const placeholder = category.querySelector('option[value=""]');
    const options = list.map(({ name }) => {
      const option = document.createElement("option");
      option.value = name;
      option.textContent = label(name);
      return option;
    });
    category.replaceChildren(placeholder, ...options);
    category.value = list.some(({ name }) => name === current) ? current : "";
  } catch {
    // Offline: the built-in options stay.
  }
};

loadCategories();

// ---- the add form's messages ------------------------------------------------

const FIELDS = { name: "Name", rrp: "Price", info: "Description" };

// The server names the field it refuses ("body/rrp must be a price like...", "body must
// have required property 'info'"): say it with the form's own label, and mark the input.
const friendly = (message) => {
  const wrong = message.match(/^body\/(\w+) (.*)$/);
  const missing = message.match(/^body must have required property '(\w+)'$/);
  const field = (wrong ?? missing)?.[1];
  if (!field || !FIELDS[field]) return message;
  markInvalid(field);
  return wrong ? `${FIELDS[field]} ${wrong[2]}.` : `${FIELDS[field]} is required.`;
};

const markInvalid = (field) => {
  for (const input of add.querySelectorAll("input")) {
    if (input.name === field) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
};

// ---- UI events ------------------------------------------------------------

category.addEventListener("change", () => {
  current = category.value;
  totals.clear();
  unknownIds.clear();
  products.replaceChildren();
  add.reset(); // what was typed was for the other category
  markInvalid(null);
  msg.textContent = "";
  add.style.display = "block";
  loadProducts();
  subscribe(); // in parallel with the GET; early totals wait in `totals`
});

add.addEventListener("submit", async (e) => {
  e.preventDefault();
  const cat = current;
  const seq = ++loadSeq; // a POST result supersedes in-flight GETs
  const payload = Object.fromEntries(new FormData(add)); // {name, rrp, info} as strings
  const button = add.querySelector("button");
  button.disabled = true;
  try {
    const list = await request(cat, payload);
    if (cat !== current) return;
    msg.textContent = "";
    markInvalid(null);
    add.reset();
    if (seq === loadSeq) draw(list); // the server pushes the new product's total (0)
  } catch (err) {
    if (cat === current) msg.textContent = friendly(err.message); // form is kept as typed
  } finally {
    button.disabled = false;
  }
});
