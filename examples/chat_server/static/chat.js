// plexichat chat page: one WebSocket, JSON frames. Everything from the server is rendered
// with textContent — module output is untrusted.
"use strict";
const $ = (id) => document.getElementById(id);
let ws = null;
let me = { user: "", room: "general" };
let retry = 0;

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function time(ts) {
  const d = ts ? new Date(ts * 1000) : new Date();
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function show(msg) {
  const log = $("log");
  const row = el("div", "msg " + msg.type);
  row.appendChild(el("span", "when", time(msg.ts)));
  if (msg.type === "message") {
    row.appendChild(el("span", "who", msg.user));
    row.appendChild(el("span", "text", msg.text));
    if (msg.filtered) row.appendChild(el("span", "tag", "filtered"));
  } else if (msg.type === "bot") {
    row.appendChild(el("span", "who", msg.module));
    row.appendChild(el("span", "text", msg.text));
  } else if (msg.type === "rejected") {
    row.appendChild(el("span", "text", `Not sent: ${msg.reason}`));
  } else {
    row.appendChild(el("span", "text", msg.text));
  }
  const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
  log.appendChild(row);
  while (log.children.length > 500) log.removeChild(log.firstChild);
  if (atBottom) log.scrollTop = log.scrollHeight;
}

function rooms(list) {
  const ul = $("rooms");
  ul.replaceChildren();
  for (const r of list) {
    const li = el("li", r.name === me.room ? "current" : "", `# ${r.name}`);
    li.dataset.room = r.name;
    li.addEventListener("click", () => send({ type: "join", room: r.name }));
    ul.appendChild(li);
  }
}

function people(list) {
  const ul = $("people");
  ul.replaceChildren(...list.map((u) => el("li", "", u === me.user ? `${u} (you)` : u)));
}

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${proto}//${location.host}/ws`);
  ws.onopen = () => {
    retry = 0;
    $("conn").textContent = "connected";
    $("conn-dot").classList.add("on");
    send({ type: "hello", user: me.user, room: me.room });
  };
  ws.onclose = () => {
    $("conn").textContent = "reconnecting…";
    $("conn-dot").classList.remove("on");
    setTimeout(connect, Math.min(5000, 300 * 2 ** retry++));
  };
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    switch (msg.type) {
      case "welcome": rooms(msg.rooms); break;
      case "joined":
        me.room = msg.room;
        $("log").replaceChildren();
        show({ type: "system", text: `You joined #${msg.room}.` });
        msg.history.forEach(show);
        rooms(msg.rooms);
        people(msg.users);
        $("text").placeholder = `Message #${msg.room} — /roll 2d6, /stats, /help`;
        break;
      case "presence": if (msg.room === me.room) people(msg.users); break;
      default: if (!msg.room || msg.room === me.room) show(msg);
    }
  };
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  me.user = $("name").value.trim();
  me.room = ($("room").value.trim() || "general").toLowerCase();
  if (!me.user) return;
  localStorage.setItem("plexichat.user", me.user);
  $("login").hidden = true;
  $("chat").hidden = false;
  connect();
  $("text").focus();
});

$("say").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text) return;
  send({ type: "say", text });
  $("text").value = "";
});

$("newroom").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("newroom-name").value.trim().toLowerCase();
  if (name) send({ type: "join", room: name });
  $("newroom-name").value = "";
});

$("name").value = localStorage.getItem("plexichat.user") || "";
