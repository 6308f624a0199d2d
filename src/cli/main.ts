#!/usr/bin/env node
import { ZgridError } from "../protocol/errors.js";
import { ConfigError } from "../config/options.js";
import { VERSION } from "../daemons/context.js";
import {
  METRICS_HELP,
  RUOK_HELP,
  SHUTDOWN_HELP,
  STATUS_HELP,
  WHOAMI_HELP,
  runMetrics,
  runRuok,
  runShutdown,
  runStatus,
  runWhoami,
} from "./admin-cmds.js";
import { EVENTS_HELP, dataHelp, runData, runEvents } from "./data-cmds.js";
import { DASHBOARD_HELP, runDashboard } from "./dashboard-cmd.js";
import { DEMO_HELP, runDemo } from "./demo-cmd.js";
import { HELLO_HELP, runHello } from "./hello-cmd.js";
import { KEYGEN_HELP, runKeygen } from "./keygen-cmd.js";
import { SERVER_HELP, runServer } from "./server-cmd.js";
import { SUBMIT_HELP, runSubmit } from "./submit-cmd.js";
import { TOP_HELP, runTop } from "./top-cmd.js";
import { didYouMean, UsageError } from "./usage.js";
import { UrlError } from "../client/url.js";
import { WORKER_HELP, runWorker } from "./worker-cmd.js";

interface Subcommand {
  summary: string;
  help: string;
  run(argv: string[]): Promise<number>;
}

const COMMANDS: Record<string, Subcommand> = {
  demo: {
    summary: "start a server with local workers, run a sample workload, print a summary",
    help: DEMO_HELP,
    run: runDemo,
  },
  server: {
    summary: "run the server (DEFAULT, METRICS, STATUS daemons and the worker endpoint)",
    help: SERVER_HELP,
    run: runServer,
  },
  worker: { summary: "run a worker host that executes tasks", help: WORKER_HELP, run: runWorker },
  hello: {
    summary: "submit the hello-world task (sum of numbers) and print its result",
    help: HELLO_HELP,
    run: runHello,
  },
  submit: {
    summary: "submit tasks calling an application's method, optionally wait for their outputs",
    help: SUBMIT_HELP,
    run: runSubmit,
  },
  ruok: { summary: "check that the server is alive (prints imok)", help: RUOK_HELP, run: runRuok },
  status: { summary: "show the server's status", help: STATUS_HELP, run: runStatus },
  top: { summary: "a live view of tasks, queues, workers and throughput", help: TOP_HELP, run: runTop },
  dashboard: {
    summary: "serve the web dashboard of a running grid (the server can too: --dashboard-port)",
    help: DASHBOARD_HELP,
    run: runDashboard,
  },
  metrics: {
    summary: "read the server's metrics (JSON or Prometheus text)",
    help: METRICS_HELP,
    run: runMetrics,
  },
  sessions: {
    summary: "list, show or cancel sessions",
    help: dataHelp("sessions"),
    run: (a) => runData("sessions", a),
  },
  tasks: { summary: "list, show or cancel tasks", help: dataHelp("tasks"), run: (a) => runData("tasks", a) },
  results: { summary: "list or show results", help: dataHelp("results"), run: (a) => runData("results", a) },
  events: { summary: "watch a session's events live", help: EVENTS_HELP, run: runEvents },
  whoami: {
    summary: "show your user, role and permissions on the server",
    help: WHOAMI_HELP,
    run: runWhoami,
  },
  shutdown: { summary: "shut the server down gracefully", help: SHUTDOWN_HELP, run: runShutdown },
  keygen: {
    summary: "print a new CurveZMQ key pair for a client or worker (servers with --curve)",
    help: KEYGEN_HELP,
    run: runKeygen,
  },
};

function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length)) + 4;
  return `zgrid ${VERSION}: a task grid on Node.js and ZeroMQ

Usage: zgrid <command> [options]     (zgrid <command> --help, or zgrid help <command>, for its options)

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(width)}${c.summary}`)
  .join("\n")}

Client commands find the server with --url tcp://HOST:PORT?token=..., ZGRID_URL, or
--connection-info FILE (without a token, the one ~/.zgrid/tokens.txt holds for HOST:PORT), and give
up when it has not answered within --timeout MS (default 2000, ZGRID_TIMEOUT_MS); those that print
listings take --json. Exit codes: 0 success, 1 failure, 2 usage error.

Start here: zgrid demo, or zgrid server --local-workers 1, then zgrid hello.`;
}

/** A mistyped command: one line with the likely one, not the whole help (that is what --help is for). */
function unknownCommand(name: string): number {
  process.stderr.write(
    `zgrid: unknown command "${name}"${didYouMean(name, Object.keys(COMMANDS))} (zgrid --help lists them)\n`,
  );
  return 2;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "help" && rest.length > 0) {
    // zgrid help CMD [ACTION] is zgrid CMD --help.
    if (!COMMANDS[rest[0]]) return unknownCommand(rest[0]);
    return main([rest[0], "--help"]);
  }
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(mainHelp() + "\n");
    return name === undefined ? 2 : 0;
  }
  if (name === "--version" || name === "-V") {
    process.stdout.write(VERSION + "\n");
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) return unknownCommand(name);
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError || err instanceof UrlError) {
      process.stderr.write(`zgrid ${name}: ${err.message}\n(see zgrid ${name} --help)\n`);
      return 2;
    }
    if (err instanceof ZgridError) {
      process.stderr.write(`zgrid ${name}: ${err.message} [${err.code}]\n`);
      return 1;
    }
    process.stderr.write(`zgrid ${name}: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Sockets and timers of libraries must not keep a finished command alive.
    setTimeout(() => process.exit(code), 100).unref();
  },
  (err: unknown) => {
    process.stderr.write(`zgrid: ${String(err)}\n`);
    process.exit(1);
  },
);
