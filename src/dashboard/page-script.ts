/**
 * The page's script (`GET /app.js`): browser JavaScript served as it is. It logs in (form or `#token=`),
 * follows `/events`, and draws the tables and charts; every value is put in with textContent or an
 * attribute, never as HTML.
 */
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
          return el("tr", { "data-task-id": t.taskId }, [td(t.taskId, "id"), td(t.status), td(t.createdBy || "-", "id"), td(t.attempts.length + " attempt(s)", "n"),
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
          return el("tr", {}, [td(a.number, "n"), td(a.workerId || "-", "id"), td(time(a.queuedAt)), td(time(a.dispatchedAt)), td(time(a.startedAt)), td(time(a.endedAt)), td(a.status || "running"), td(a.error || "", "err")]);
        });
        box.replaceChildren(
          el("h2", { text: "Task " + t.taskId }),
          el("p", { text: "status " + t.status + ", session " + t.sessionId + ", partition " + t.options.partitionId +
            ", worker " + (t.workerId || "-") + (t.error ? ", error: " + t.error : "") }),
          el("p", { id: "task-lineage", text: "created by " + (t.createdBy || "-") + ", parent " + ((t.parentTaskIds || []).join(", ") || "none") +
            ", initial task " + (t.initialTaskId || t.taskId) }),
          el("p", { id: "task-times", text: "received " + time(t.receivedAt) + ", queued " + time(t.submittedAt) + ", dispatched " + time(t.dispatchedAt) +
            ", started " + time(t.startedAt) + ", ended " + time(t.endedAt) + " (UTC)" }),
          el("table", { id: "attempts" }, [el("thead", {}, [el("tr", {}, ["#", "Worker", "Queued (UTC)", "Dispatched (UTC)", "Started (UTC)", "Ended (UTC)", "Status", "Error"].map(function (h) { return el("th", { text: h }); }))]),
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
