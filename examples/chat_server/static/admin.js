// plexichat admin panel: polls /api/modules every second; actions POST with the admin token.
// Module-provided text (names, errors, probe reports) is rendered with textContent only.
"use strict";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("plexichat.token") || "";
let busy = false;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function mib(bytes) {
  return bytes == null ? "–" : `${(bytes / 1048576).toFixed(1)} MiB`;
}

function notice(text, bad) {
  $("notice").textContent = text;
  $("notice").className = bad ? "bad" : "";
}

function perms(row) {
  const cell = el("td");
  const declared = row.declared || [];
  const missing = new Set(row.missing || []);
  const d = el("div");
  d.appendChild(el("span", "hint", "declared: "));
  if (row.declared === null) d.appendChild(el("span", "hint", "?"));
  else if (!declared.length) d.appendChild(el("span", "hint", "nothing"));
  for (const p of declared) d.appendChild(el("span", missing.has(p) ? "perm missing" : "perm", p));
  const g = el("div");
  g.appendChild(el("span", "hint", "granted: "));
  if (!row.granted.length) g.appendChild(el("span", "hint", "nothing"));
  for (const p of row.granted) g.appendChild(el("span", "perm", p));
  cell.append(d, g);
  if (missing.size) cell.appendChild(el("div", "err", `refused: missing ${[...missing].join(", ")}`));
  return cell;
}

function confinement(row) {
  const cell = el("td");
  for (const layer of row.confinement.layers) cell.appendChild(el("span", "layer", layer));
  for (const [layer, why] of Object.entries(row.confinement.missing || {})) {
    const span = el("span", "layer missing", layer);
    span.title = why;
    cell.appendChild(span);
  }
  if (!cell.children.length) cell.appendChild(el("span", "hint", "–"));
  return cell;
}

function actions(row) {
  const cell = el("td", "actions");
  for (const action of row.actions) {
    const b = el("button", action === "unload" ? "ghost" : "", action);
    b.dataset.module = row.name;
    b.dataset.action = action;
    b.addEventListener("click", () => act(row.name, action, b));
    cell.appendChild(b);
  }
  return cell;
}

function render(data) {
  const body = $("modules");
  body.replaceChildren();
  for (const row of data.modules) {
    const tr = el("tr");
    tr.id = `module-${row.name}`;
    tr.dataset.state = row.state;
    const name = el("td");
    name.appendChild(el("strong", "", row.name));
    name.appendChild(el("div", "hint", row.description || row.path));
    if (row.contract) {
      const c = row.contract;
      name.appendChild(el("div", "hint", `contract ${c.score}/100 · ${c.warnings} warning(s)`));
    }
    const state = el("td");
    state.appendChild(el("span", `state ${row.state}`, row.state));
    if (row.pid) state.appendChild(el("div", "hint", `pid ${row.pid}`));
    if (row.error) state.appendChild(el("div", "err", row.error));
    const exit = el("td");
    exit.appendChild(el("div", "", row.last_exit_cause || "–"));
    if (row.last_exit_reason) exit.appendChild(el("div", "hint", row.last_exit_reason));
    tr.append(
      name, state, perms(row), confinement(row),
      el("td", "num", mib(row.rss_bytes)),
      el("td", "num", row.cpu_percent == null ? "–" : `${row.cpu_percent}%`),
      el("td", "num", row.calls ?? "–"), el("td", "num", row.errors ?? "–"),
      el("td", "num", row.restarts ?? "–"), exit, actions(row),
    );
    body.appendChild(tr);
  }
  const s = data.server;
  const cards = [
    ["clients", s.clients], ["messages", s.messages], ["rejected by filter", s.rejected],
    ["modified by filter", s.modified], ["commands", s.commands], ["module posts", s.module_posts],
    ["mode", `${s.mode}${s.strict ? " · strict" : ""}`],
  ];
  $("cards").replaceChildren(...cards.map(([label, value]) => {
    const card = el("div", "card");
    card.append(el("b", "", value), el("span", "", label));
    return card;
  }));
  $("probe-list").replaceChildren(...data.probes.slice(-16).reverse().map((p) =>
    el("li", "", `${new Date(p.ts * 1000).toLocaleTimeString()} · ${p.module} · ${p.attempt}: ${p.outcome}`)));
  if (!data.probes.length) $("probe-list").appendChild(el("li", "hint", "nothing yet"));
}

async function refresh() {
  try {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const response = await fetch("/api/modules", { cache: "no-store", headers });
    if (response.status === 401 || response.status === 403) {
      notice("enter the admin token to see the modules (production mode)", true);
    }
    if (!response.ok) throw new Error(response.statusText);
    if (!busy) render(await response.json());
    $("live").textContent = `live · ${new Date().toLocaleTimeString()}`;
    $("live-dot").classList.add("on");
  } catch (err) {
    $("live").textContent = "server unreachable";
    $("live-dot").classList.remove("on");
  }
}

async function act(name, action, button) {
  if (!token) { notice("enter the admin token first", true); $("token").focus(); return; }
  busy = true;
  button.disabled = true;
  notice(`${action} ${name}…`);
  try {
    const response = await fetch(`/api/modules/${encodeURIComponent(name)}/${action}`, {
      method: "POST", headers: { Authorization: `Bearer ${token}` },
    });
    const body = await response.json();
    if (!response.ok) notice(`${action} ${name}: ${body.error}`, true);
    else notice(`${action} ${name}: now ${body.module.state}`);
  } catch (err) {
    notice(`${action} ${name}: ${err}`, true);
  } finally {
    busy = false;
    refresh();
  }
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem("plexichat.token", token);
  notice(token ? "token set" : "token cleared");
  refresh();
});
$("token").value = token;
refresh();
setInterval(refresh, 1000);
