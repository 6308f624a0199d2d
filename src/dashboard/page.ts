/**
 * The dashboard's one page and its script: plain HTML, CSS and browser JavaScript, served as they are
 * (no framework, no build). The page holds no data until the viewer has logged in; every number is put
 * in with textContent, never as HTML.
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>zgrid dashboard</title>
<style>
  :root { --bg: #f6f7f9; --card: #fff; --ink: #1d2430; --mute: #667085; --line: #e3e6eb; --accent: #2f6fdd; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: var(--bg); color: var(--ink); }
  header { display: flex; align-items: center; gap: 16px; padding: 10px 20px; background: #1d2430; color: #fff; }
  header h1 { font-size: 17px; margin: 0; }
  header .grow { flex: 1; }
  header button { background: transparent; color: #fff; border: 1px solid #fff6; }
  #live { font-size: 12px; padding: 2px 8px; border-radius: 10px; background: #555; }
  #live.on { background: #1f9d55; }
  main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); }
  section.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; min-width: 0; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 14px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .04em; color: var(--mute); }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { font-weight: 600; color: var(--mute); font-size: 12px; }
  td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
  td.id { font-family: ui-monospace, monospace; font-size: 12px; }
  td.err { white-space: normal; color: #b42318; font-family: ui-monospace, monospace; font-size: 12px; }
  button { font: inherit; padding: 3px 10px; border-radius: 5px; border: 1px solid var(--line); background: #fff; cursor: pointer; }
  button.cancel { color: #b42318; border-color: #f3b1aa; }
  .bar { width: 140px; height: 10px; background: var(--line); border-radius: 5px; overflow: hidden; display: inline-block; vertical-align: middle; }
  .bar > div { height: 100%; background: var(--accent); }
  .mute { color: var(--mute); }
  .legend span { display: inline-block; margin-right: 12px; font-size: 12px; }
  .legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
  svg { width: 100%; height: 170px; display: block; }
  #login { max-width: 420px; margin: 80px auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 24px; }
  #login input { width: 100%; padding: 8px; margin: 8px 0; font: inherit; }
  #login-error, #error, #message { color: #b42318; }
  #message.ok { color: #1f9d55; }
  .big { font-size: 26px; font-weight: 600; }
</style>
</head>
<body>
<header>
  <h1>zgrid dashboard</h1>
  <span id="server" class="mute"></span>
  <span class="grow"></span>
  <span id="live">offline</span>
  <button id="logout" hidden>Log out</button>
</header>
<form id="login" hidden>
  <h2>Log in</h2>
  <p class="mute">The token of the grid's connect URL (<code>tcp://HOST:PORT?token=…</code>).</p>
  <input id="token" type="password" autocomplete="current-password" placeholder="token" required>
  <button type="submit">Log in</button>
  <p id="login-error" role="alert"></p>
</form>
<div id="dashboard" hidden>
  <p id="error" role="alert" style="margin: 12px 20px 0"></p>
  <main>
    <section class="card">
      <h2>Tasks by status</h2>
      <table><thead><tr><th>Status</th><th class="n">Tasks</th></tr></thead><tbody id="tasks-by-status"></tbody></table>
      <p>Throughput: <span id="throughput" class="big"></span> <span class="mute">completed tasks/s</span></p>
    </section>
    <section class="card">
      <h2>Partitions</h2>
      <table><thead><tr><th>Partition</th><th class="n">Queued</th><th class="n">Tasks/s</th><th class="n">Workers</th><th class="n">Slots</th></tr></thead>
      <tbody id="partitions"></tbody></table>
    </section>
    <section class="card">
      <h2>Throughput per partition (completed tasks/s)</h2>
      <svg id="chart-throughput" viewBox="0 0 600 170" preserveAspectRatio="none" role="img" aria-label="throughput per partition"></svg>
      <div id="legend-throughput" class="legend"></div>
    </section>
    <section class="card">
      <h2>Queue length per partition</h2>
      <svg id="chart-queue" viewBox="0 0 600 170" preserveAspectRatio="none" role="img" aria-label="queue length per partition"></svg>
      <div id="legend-queue" class="legend"></div>
    </section>
    <section class="card wide">
      <h2>Sessions <span id="sessions-total" class="mute"></span></h2>
      <p id="message" role="status"></p>
      <table><thead><tr><th>Session</th><th>Status</th><th class="n">Tasks</th><th>Progress</th><th>By status</th><th></th></tr></thead>
      <tbody id="sessions"></tbody></table>
    </section>
    <section class="card wide">
      <h2>Workers <span id="workers-total" class="mute"></span></h2>
      <table><thead><tr><th>Worker</th><th>Partitions</th><th class="n">Busy / slots</th><th class="n">Heartbeat age</th><th>Host</th></tr></thead>
      <tbody id="workers"></tbody></table>
    </section>
    <section class="card wide">
      <h2>Tasks</h2>
      <form id="task-form"><input id="task-id" placeholder="task id" size="40"> <button type="submit">Show task</button></form>
      <p id="task-list-title" class="mute"></p>
      <table><tbody id="task-list"></tbody></table>
      <div id="task-detail"></div>
    </section>
  </main>
</div>
<script src="/app.js"></script>
</body>
</html>
`;

export const PAGE_JS = `"use strict";
(function () {
  var COLORS = ["#2f6fdd", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#1098ad", "#f59f00", "#5c7cfa", "#868e96", "#d6336c", "#0ca678", "#7048e8"];
  var FINISHED = ["COMPLETED", "ERROR", "TIMEOUT", "CANCELLED"];
  var stream = null;
  var retry = null;

  function $(id) { return document.getElementById(id); }
  function el(tag, props, children) {
    var e = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) {
      if (k === "text") e.textContent = props[k];
      else if (k === "class") e.className = props[k];
      else if (k.indexOf("data-") === 0) e.setAttribute(k, props[k]);
      else e[k] = props[k];
    });
    (children || []).forEach(function (c) { e.appendChild(c); });
    return e;
  }
  function td(text, cls) { return el("td", { text: String(text), class: cls || "" }); }
  function fill(tbody, rows) { tbody.replaceChildren.apply(tbody, rows); }
  function age(ms) { return ms < 10000 ? (ms / 1000).toFixed(1) + "s" : Math.round(ms / 1000) + "s"; }
  function duration(s) {
    s = Math.floor(s || 0);
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? h + "h" + m + "m" : m ? m + "m" + (s % 60) + "s" : s + "s";
  }
  function time(ms) { return ms ? new Date(ms).toISOString().slice(11, 23) : "-"; }

  function api(method, path, body) {
    var init = { method: method, credentials: "same-origin", headers: {} };
    if (body !== undefined) {
      init.headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init);
  }

  function showLogin(message) {
    closeStream();
    clearData();
    $("dashboard").hidden = true;
    $("logout").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").focus();
  }

  function showDashboard() {
    $("login").hidden = true;
    $("login-error").textContent = "";
    $("dashboard").hidden = false;
    $("logout").hidden = false;
  }

  function clearData() {
    ["tasks-by-status", "partitions", "sessions", "workers", "task-list", "chart-throughput", "chart-queue",
     "legend-throughput", "legend-queue", "task-detail"].forEach(function (id) { $(id).replaceChildren(); });
    ["throughput", "sessions-total", "workers-total", "server", "error", "message", "task-list-title"].forEach(function (id) {
      $(id).textContent = "";
    });
  }

  function closeStream() {
    if (stream) stream.close();
    stream = null;
    if (retry) clearTimeout(retry);
    retry = null;
    $("live").textContent = "offline";
    $("live").className = "";
  }

  function openStream() {
    closeStream();
    var es = new EventSource("/events");
    stream = es;
    es.addEventListener("open", function () { $("live").textContent = "live"; $("live").className = "on"; });
    es.addEventListener("snapshot", function (e) { render(JSON.parse(e.data)); });
    es.addEventListener("unauthorized", function () { showLogin("Your login ended: log in again."); });
    es.addEventListener("error", function () {
      if (stream !== es) return;
      $("live").textContent = "reconnecting";
      $("live").className = "";
      if (es.readyState !== 2) return; // the browser reconnects by itself
      // Closed for good (an error status): find out why, then log in again or retry.
      api("GET", "/api/snapshot").then(function (r) {
        if (r.status === 401) showLogin("Log in again.");
        else retry = setTimeout(openStream, 2000);
      }, function () { retry = setTimeout(openStream, 2000); });
    });
  }

  function render(s) {
    $("server").textContent = (s.version ? "zgrid " + s.version : "") + (s.uptimeSeconds !== undefined ? ", up " + duration(s.uptimeSeconds) : "") +
      ", updated " + time(s.at) + " UTC";
    $("error").textContent = s.error || "";

    fill($("tasks-by-status"), Object.keys(s.tasksByStatus).filter(function (k) { return s.tasksByStatus[k] > 0; }).map(function (k) {
      return el("tr", { "data-status": k }, [td(k), td(s.tasksByStatus[k], "n count")]);
    }));
    $("throughput").textContent = s.throughput === null ? "-" : String(s.throughput);

    fill($("partitions"), s.partitions.map(function (p) {
      return el("tr", { "data-partition": p.partitionId }, [td(p.partitionId, "id"), td(p.queued, "n queued"),
        td(p.throughput === null ? "-" : p.throughput, "n"), td(p.workers, "n"), td(p.slots, "n")]);
    }));
    chart("chart-throughput", "legend-throughput", s.history, "throughput");
    chart("chart-queue", "legend-queue", s.history, "queued");

    $("sessions-total").textContent = "(" + s.sessions.length + " most recent of " + s.sessionsTotal + ")";
    fill($("sessions"), s.sessions.map(function (x) {
      var done = FINISHED.reduce(function (n, k) { return n + (x.counts[k] || 0); }, 0);
      var pct = x.taskCount > 0 ? Math.round((100 * done) / x.taskCount) : 0;
      var bar = el("div", { class: "bar", title: pct + "%" }, [el("div")]);
      bar.firstChild.style.width = pct + "%";
      var actions = el("td", {}, [el("button", { text: "Tasks", class: "tasks", onclick: function () { showTasks(x.sessionId); } })]);
      if (x.status === "RUNNING" || x.status === "PAUSED" || x.status === "CLOSED") {
        actions.appendChild(document.createTextNode(" "));
        actions.appendChild(el("button", { text: "Cancel", class: "cancel", onclick: function () { cancel(x.sessionId); } }));
      }
      var counts = Object.keys(x.counts).map(function (k) { return k + " " + x.counts[k]; }).join(", ");
      return el("tr", { "data-session-id": x.sessionId }, [td(x.sessionId, "id"), td(x.status, "status"), td(x.taskCount, "n"),
        el("td", {}, [bar, document.createTextNode(" " + done + "/" + x.taskCount)]), td(counts, "mute"), actions]);
    }));

    $("workers-total").textContent = "(" + s.workersTotal + ")";
    fill($("workers"), s.workers.map(function (w) {
      return el("tr", { "data-worker-id": w.workerId }, [td(w.workerId, "id"), td(w.partitions.join(", ")), td(w.busy + " / " + w.slots, "n slots"),
        td(age(w.heartbeatAgeMs), "n age"), td(w.host ? w.host + ":" + w.pid : String(w.pid))]);
    }));
  }

  function chart(svgId, legendId, history, key) {
    var svg = $(svgId), legend = $(legendId), W = 600, H = 170, PAD = 18;
    var names = [];
    history.forEach(function (p) { Object.keys(p[key]).forEach(function (n) { if (names.indexOf(n) < 0) names.push(n); }); });
    names.sort();
    var max = 1;
    history.forEach(function (p) { names.forEach(function (n) { max = Math.max(max, p[key][n] || 0); }); });
    var t0 = history.length ? history[0].at : 0, t1 = history.length ? history[history.length - 1].at : 1;
    var span = Math.max(1, t1 - t0);
    var ns = "http://www.w3.org/2000/svg";
    var parts = [];
    function svgEl(tag, attrs) {
      var e = document.createElementNS(ns, tag);
      Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
      return e;
    }
    parts.push(svgEl("line", { x1: 0, y1: H - PAD, x2: W, y2: H - PAD, stroke: "#e3e6eb" }));
    var top = svgEl("text", { x: 4, y: 12, "font-size": 11, fill: "#667085" });
    top.textContent = String(Math.round(max * 10) / 10);
    parts.push(top);
    var foot = svgEl("text", { x: 4, y: H - 4, "font-size": 11, fill: "#667085" });
    foot.textContent = history.length > 1 ? "last " + Math.round(span / 1000) + " s" : "waiting for data";
    parts.push(foot);
    names.forEach(function (n, i) {
      var pts = history.map(function (p) {
        var x = ((p.at - t0) / span) * W;
        var y = H - PAD - ((p[key][n] || 0) / max) * (H - 2 * PAD);
        return x.toFixed(1) + "," + y.toFixed(1);
      }).join(" ");
      parts.push(svgEl("polyline", { points: pts, fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 2, "data-series": n }));
    });
    svg.replaceChildren.apply(svg, parts);
    legend.replaceChildren.apply(legend, names.map(function (n, i) {
      var sw = el("i");
      sw.style.background = COLORS[i % COLORS.length];
      return el("span", {}, [sw, document.createTextNode(n)]);
    }));
  }

  function say(text, ok) {
    $("message").textContent = text;
    $("message").className = ok ? "ok" : "";
  }

  function cancel(sessionId) {
    if (!window.confirm("Cancel session " + sessionId + "? Its unfinished tasks are cancelled and its results aborted.")) return;
    api("POST", "/api/sessions/cancel", { sessionId: sessionId }).then(function (r) {
      return r.json().then(function (b) {
        if (r.status === 401) return showLogin("Log in again.");
        if (r.ok) say("Session " + sessionId + " cancelled.", true);
        else say("Could not cancel " + sessionId + ": " + b.error, false);
      });
    }, function (err) { say("Could not cancel " + sessionId + ": " + err.message, false); });
  }

  function showTasks(sessionId) {
    $("task-list-title").textContent = "Tasks of session " + sessionId + " (50 most recent):";
    api("GET", "/api/tasks?sessionId=" + encodeURIComponent(sessionId)).then(function (r) {
      return r.json().then(function (b) {
        if (r.status === 401) return showLogin("Log in again.");
        if (!r.ok) return fill($("task-list"), [el("tr", {}, [td(b.error, "err")])]);
        fill($("task-list"), b.items.map(function (t) {
          return el("tr", { "data-task-id": t.taskId }, [td(t.taskId, "id"), td(t.status), td(t.attempts.length + " attempt(s)", "n"),
            td(t.error || "", "err"), el("td", {}, [el("button", { text: "Attempts", onclick: function () { showTask(t.taskId); } })])]);
        }));
      });
    });
  }

  function showTask(taskId) {
    api("GET", "/api/task?taskId=" + encodeURIComponent(taskId)).then(function (r) {
      return r.json().then(function (t) {
        if (r.status === 401) return showLogin("Log in again.");
        var box = $("task-detail");
        if (!r.ok) return box.replaceChildren(el("p", { text: t.error, class: "err" }));
        var rows = t.attempts.map(function (a) {
          return el("tr", {}, [td(a.number, "n"), td(a.workerId || "-", "id"), td(time(a.startedAt)), td(time(a.endedAt)), td(a.status || "running"), td(a.error || "", "err")]);
        });
        box.replaceChildren(
          el("h2", { text: "Task " + t.taskId }),
          el("p", { text: "status " + t.status + ", session " + t.sessionId + ", partition " + t.options.partitionId +
            ", worker " + (t.workerId || "-") + (t.error ? ", error: " + t.error : "") }),
          el("table", { id: "attempts" }, [el("thead", {}, [el("tr", {}, ["#", "Worker", "Started (UTC)", "Ended (UTC)", "Status", "Error"].map(function (h) { return el("th", { text: h }); }))]),
            el("tbody", {}, rows)]));
      });
    });
  }

  function start(fromLogin) {
    return api("GET", "/api/snapshot").then(function (r) {
      if (r.status !== 200) return showLogin(fromLogin ? "Wrong token." : "");
      return r.json().then(function (s) {
        showDashboard();
        render(s);
        openStream();
      });
    }, function (err) { showLogin("The dashboard cannot be reached: " + err.message); });
  }

  function login(token) {
    return api("POST", "/login", { token: token }).then(function (r) { return r.status === 204; });
  }

  $("login").addEventListener("submit", function (e) {
    e.preventDefault();
    var token = $("token").value;
    $("token").value = "";
    login(token).then(function (ok) {
      if (ok) start(true);
      else showLogin("Wrong token.");
    });
  });
  $("logout").addEventListener("click", function () {
    api("POST", "/logout").then(function () { showLogin("Logged out."); });
  });
  $("task-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var id = $("task-id").value.trim();
    if (id) showTask(id);
  });

  // A token in the fragment (#token=...) never reaches a server: it is read here, taken out of the
  // address bar and history, and shown once to POST /login.
  var m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    history.replaceState(null, "", location.pathname + location.search);
    login(decodeURIComponent(m[1])).then(function (ok) {
      if (ok) start(true);
      else showLogin("Wrong token.");
    });
  } else {
    start(false);
  }
})();
`;
