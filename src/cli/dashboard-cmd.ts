import { curveKeysFromEnv } from "./keygen-cmd.js";
import { Dashboard, dashboardBanner } from "../dashboard/index.js";
import { TARGET_HELP, TARGET_OPTIONS, daemonUrl } from "./target.js";
import { parse, UsageError } from "./usage.js";

export const DASHBOARD_HELP = `zgrid dashboard [--url URL | --connection-info FILE] [--port N] [--host ADDR] [--interval MS]

Serves the web dashboard of a running grid: tasks by status, throughput and queue length per partition,
sessions with their progress and a cancel button, workers with busy slots and heartbeat age, a task's
attempts and errors, pushed to the page live. It reads the grid with the URL's token, and lets in a
browser only with that same token (a login form, or #token=TOKEN after the page's address). See
docs/dashboard.md. The server can run it itself: zgrid server --dashboard-port N.

${TARGET_HELP}
  -p, --port N                   HTTP port (default 8555; 0: any free port)
      --host ADDR                address to bind (default 127.0.0.1)
      --interval MS              time between two snapshots pushed to the page (default 1000)`;

/** `zgrid dashboard`: runs until SIGINT or SIGTERM. */
export async function runDashboard(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...TARGET_OPTIONS,
    port: { type: "string", short: "p" },
    host: { type: "string" },
    interval: { type: "string" },
  });
  if (values.help) {
    process.stdout.write(DASHBOARD_HELP + "\n");
    return 0;
  }
  const port = Number(values.port ?? 8555);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError("--port must be an integer from 0 to 65535");
  const intervalMs = Number(values.interval ?? 1000);
  if (!Number.isInteger(intervalMs) || intervalMs < 100)
    throw new UsageError("--interval must be an integer of at least 100 (milliseconds)");
  const url = await daemonUrl(values, "default");
  // Without a STATUS daemon the page still works, with the whole grid's throughput only.
  const statusUrl = await daemonUrl(values, "status").catch(() => null);
  const curveKeyPair = curveKeysFromEnv();
  const dashboard = await Dashboard.start({
    url,
    statusUrl,
    ...(curveKeyPair ? { curveKeyPair } : {}),
    port,
    host: (values.host as string | undefined) ?? "127.0.0.1",
    intervalMs,
    log: (message) => process.stderr.write(message + "\n"),
  });
  process.stdout.write(`zgrid dashboard at ${dashboardBanner(dashboard.url, dashboard.authEnabled)}\n`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await dashboard.close();
  return 0;
}
