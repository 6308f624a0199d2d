import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { createLogger, type Logger } from "../log.js";
import { parseWorkerUrl } from "../worker/worker-url.js";
import { curveKeysFromEnv } from "./keygen-cmd.js";
import { intFlag, parse, UsageError } from "./usage.js";

export const WORKER_HELP = `zgrid worker --connect URL --app-path DIR [options]

Runs a worker host: connects to the server's worker endpoint (the workerUrl it printed), takes tasks of
its partitions and runs them in application modules loaded from DIR (NAME.VERSION.js, else NAME.js).

  -c, --connect URL        worker endpoint, tcp://HOST:PORT?token=TOKEN [ZGRID_WORKER_URL]
  -a, --app-path DIR       where application modules live [ZGRID_APP_PATH]
  -s, --slots N            tasks run at once, one thread each (default: CPU count) [ZGRID_SLOTS]
  -p, --partition P        partitions served, comma-separated (default "default") [ZGRID_PARTITION]
      --prefetch N         most tasks held beyond the slots, to hide latency; the server gives
                           that many only for short tasks (default: max(4096, 32 × slots)) [ZGRID_PREFETCH]
      --worker-id ID       name of this worker (default: host-pid-random)
      --watch              new sessions run an app module's file as it is now: edits need no
                           restart (every edition stays in memory) [ZGRID_WATCH=1]
      --log-level LEVEL    trace, debug, info, warn, error (default info) [ZGRID_LOG_LEVEL]

With a server started with --curve, the workerUrl carries serverKey=; this worker's own CurveZMQ key
pair comes from ZGRID_CURVE_PUBLIC_KEY and ZGRID_CURVE_SECRET_KEY (zgrid keygen), else a new one.`;

export async function runWorker(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    connect: { type: "string", short: "c" },
    "app-path": { type: "string", short: "a" },
    slots: { type: "string", short: "s" },
    partition: { type: "string", short: "p" },
    prefetch: { type: "string" },
    "worker-id": { type: "string" },
    watch: { type: "boolean" },
    "log-level": { type: "string" },
  });
  if (values.help) {
    process.stdout.write(WORKER_HELP + "\n");
    return 0;
  }
  const env = process.env;
  const url = (values.connect as string | undefined) ?? env.ZGRID_WORKER_URL;
  const appPath = (values["app-path"] as string | undefined) ?? env.ZGRID_APP_PATH;
  if (!url) throw new UsageError("--connect URL is required: the workerUrl the server printed");
  if (!appPath) throw new UsageError("--app-path DIR is required: where the application modules are");
  let endpoint: string;
  try {
    endpoint = parseWorkerUrl(url).endpoint;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const slots = intFlag(values.slots ?? env.ZGRID_SLOTS, "--slots", 1, 1024) ?? availableParallelism();
  const prefetch = intFlag(values.prefetch ?? env.ZGRID_PREFETCH, "--prefetch", 0, 100_000);
  const partitions = String(values.partition ?? env.ZGRID_PARTITION ?? "default")
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean);
  const log = createLogger(
    (values["log-level"] as string | undefined) ?? env.ZGRID_LOG_LEVEL ?? "info",
    "zgrid-worker",
  );
  // Loaded here so that client commands do not pay for the worker code.
  const { WorkerHost } = await import("../worker/host.js");
  let host: InstanceType<typeof WorkerHost>;
  try {
    host = new WorkerHost({
      url,
      appPath: resolve(appPath),
      slots,
      partitions,
      prefetch,
      workerId: values["worker-id"] as string | undefined,
      curveKeyPair: curveKeysFromEnv(env),
      watchApps: values.watch === true || env.ZGRID_WATCH === "1",
      log,
    });
  } catch (err) {
    // What the host refuses to start with (an --app-path that is no directory) is the user's mistake.
    throw new UsageError((err as Error).message);
  }
  const stop = (): void => void host.stop();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  await whileUnanswered(host.start(), endpoint, log);
  log.info({ slots, partitions }, "worker connected");
  await host.closed;
  // Stopped by a mistake it cannot get past (said in the log): a supervisor should see a failure.
  return host.failure ? 1 : 0;
}

/**
 * A worker started before its server keeps trying to reach it; it says so once the first-contact time
 * (ZGRID_TIMEOUT_MS, default 2000) has passed, then every 30 s, so that a wrong address shows at once.
 */
async function whileUnanswered(welcomed: Promise<void>, endpoint: string, log: Logger): Promise<void> {
  const since = Date.now();
  const firstMs = Number(process.env.ZGRID_TIMEOUT_MS) || 2000;
  const say = (): void => {
    const s = Math.round((Date.now() - since) / 1000);
    log.warn(`no zgrid server answers at ${endpoint.replace(/^tcp:\/\//, "")} yet (${s} s); still trying`);
    timer = setTimeout(say, 30_000);
  };
  let timer = setTimeout(say, firstMs);
  try {
    await welcomed;
  } finally {
    clearTimeout(timer);
  }
}
