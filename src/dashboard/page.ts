/**
 * The dashboard's one page: plain HTML and CSS, served as it is (no framework, no build). It holds no
 * data: its script (page-script.ts) fills it in once the viewer has logged in.
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
