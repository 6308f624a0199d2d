import type { ZgridClient } from "../client/client.js";
import type { ListQuery, ResultInfo, SessionInfo, TaskInfo } from "../client/types.js";
import { table, time } from "./table.js";
import { TARGET_HELP, TARGET_OPTIONS, withClient } from "./target.js";
import { intFlag, parse, UsageError } from "./usage.js";

type Kind = "sessions" | "tasks" | "results";

const LIST_OPTIONS = {
  ...TARGET_OPTIONS,
  json: { type: "boolean" },
  session: { type: "string", short: "s" },
  status: { type: "string" },
  sort: { type: "string" },
  desc: { type: "boolean" },
  page: { type: "string" },
  "page-size": { type: "string" },
} as const;

const STATUS_EXAMPLES: Record<Kind, string> = {
  sessions: "RUNNING, PAUSED, CLOSED, CANCELLED, ...",
  tasks: "SUBMITTED, PROCESSING, COMPLETED, ERROR, ...",
  results: "CREATED, COMPLETED, ABORTED, DELETED",
};

export function dataHelp(kind: Kind): string {
  const one = kind.slice(0, -1);
  const session = kind === "sessions" ? "" : "[--session ID] ";
  const lines = [
    `zgrid ${kind} list ${session}[--status S[,S]] [--sort FIELD [--desc]] [--page N] [--json]`,
    `zgrid ${kind} get ID [--json]`,
    ...(kind === "results" ? [] : [`zgrid ${kind} cancel ID [ID ...] [--json]`]),
    "",
    `list: a page of ${kind}, as a table. get: one ${one}, a line per field.` +
      (kind === "results" ? "" : ` cancel: cancels ${kind}`),
    (kind === "results" ? "" : "and prints how many were cancelled, by status. ") +
      "--json prints what the server returned.",
    "",
    TARGET_HELP,
    ...(kind === "sessions" ? [] : [`  -s, --session ID               only the ${kind} of this session`]),
    `      --status S[,S]             only these statuses (${STATUS_EXAMPLES[kind]})`,
    `      --sort FIELD [--desc]      sort by a field (createdAt, status, ...), descending with --desc`,
    `      --page N                   which page, from 0 (default 0)`,
    `      --page-size N              ${kind} a page (default 100, at most 10000)`,
    `      --json                     print JSON`,
  ];
  return lines.join("\n");
}

function row(kind: Kind, item: SessionInfo | TaskInfo | ResultInfo): string[] {
  if (kind === "sessions") {
    const s = item as SessionInfo;
    return [s.sessionId, s.status, String(s.taskCount), s.partitionIds.join(",") || "-", time(s.createdAt)];
  }
  if (kind === "tasks") {
    const t = item as TaskInfo;
    return [
      t.taskId,
      t.status,
      t.options.partitionId,
      t.options.applicationName || "-",
      String(t.attempts.length),
      time(t.createdAt),
      (t.error ?? "").slice(0, 60),
    ];
  }
  const r = item as ResultInfo;
  return [r.resultId, r.status, r.name, String(r.size), r.ownerTaskId ?? "-", time(r.createdAt)];
}

const HEADERS: Record<Kind, string[]> = {
  sessions: ["SESSION", "STATUS", "TASKS", "PARTITIONS", "CREATED"],
  tasks: ["TASK", "STATUS", "PARTITION", "APPLICATION", "ATTEMPTS", "CREATED", "ERROR"],
  results: ["RESULT", "STATUS", "NAME", "BYTES", "OWNER", "CREATED"],
};

async function list(c: ZgridClient, kind: Kind, query: ListQuery) {
  if (kind === "sessions") return c.listSessions(query);
  if (kind === "tasks") return c.listTasks(query);
  return c.listResults(query);
}

/** `zgrid sessions|tasks|results list|get|cancel`. */
export async function runData(kind: Kind, argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (verb === undefined || verb === "--help" || verb === "-h") {
    process.stdout.write(dataHelp(kind) + "\n");
    return verb === undefined ? 2 : 0;
  }
  const { values, positionals } = parse(rest, LIST_OPTIONS, true);
  if (values.help) {
    process.stdout.write(dataHelp(kind) + "\n");
    return 0;
  }
  const json = Boolean(values.json);
  const print = (v: unknown) =>
    process.stdout.write((typeof v === "string" ? v : JSON.stringify(v, null, 2)) + "\n");
  switch (verb) {
    case "list": {
      const filter: Record<string, unknown> = {};
      if (values.session) {
        if (kind === "sessions") throw new UsageError("--session filters tasks and results, not sessions");
        filter.sessionId = values.session;
      }
      if (values.status) filter.status = String(values.status).toUpperCase().split(",");
      const query: ListQuery = {
        filter,
        page: intFlag(values.page, "--page", 0) ?? 0,
        pageSize: intFlag(values["page-size"], "--page-size", 1, 10_000) ?? 100,
      };
      if (values.sort) query.sort = { field: String(values.sort), direction: values.desc ? "desc" : "asc" };
      const page = await withClient(values, "default", (c) => list(c, kind, query));
      if (json) return (print(page), 0);
      const items = page.items as (SessionInfo | TaskInfo | ResultInfo)[];
      print(
        table(
          HEADERS[kind],
          items.map((i) => row(kind, i)),
        ),
      );
      print(`${items.length} of ${page.total} ${kind}`);
      return 0;
    }
    case "get": {
      if (positionals.length !== 1) throw new UsageError(`zgrid ${kind} get takes one id`);
      const id = positionals[0];
      const item: object = await withClient<object>(values, "default", (c) =>
        kind === "sessions" ? c.getSession(id) : kind === "tasks" ? c.getTask(id) : c.getResult(id),
      );
      if (json) return (print(item), 0);
      print(
        Object.entries(item)
          .map(
            ([k, v]) =>
              `${k.padEnd(18)} ${typeof v === "object" && v !== null ? JSON.stringify(v) : String(v)}`,
          )
          .join("\n"),
      );
      return 0;
    }
    case "cancel": {
      if (kind === "results")
        throw new UsageError("results cannot be cancelled: cancel their tasks or session");
      if (positionals.length === 0) throw new UsageError(`zgrid ${kind} cancel takes one or more ids`);
      const out = await withClient(values, "default", async (c) => {
        if (kind === "tasks") return c.cancelTasks(positionals);
        const all: Record<string, unknown> = {};
        for (const id of positionals) all[id] = (await c.cancelSession(id)).cancelled;
        return all;
      });
      print(json ? out : `cancelled: ${JSON.stringify(out)}`);
      return 0;
    }
    default:
      throw new UsageError(
        `unknown action "${verb}": use list, get${kind === "results" ? "" : " or cancel"}`,
      );
  }
}

export const EVENTS_HELP = `zgrid events --session ID [--types T[,T]] [--json]

Watches a session live: every existing task and result first, then each change as it happens,
until Ctrl+C.

${TARGET_HELP}
  -s, --session ID               the session to watch
      --types T,T                newTask, taskStatusUpdate, newResult, resultStatusUpdate, resultOwnerUpdate
      --json                     one JSON object a line`;

export async function runEvents(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    ...TARGET_OPTIONS,
    session: { type: "string", short: "s" },
    types: { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) {
    process.stdout.write(EVENTS_HELP + "\n");
    return 0;
  }
  if (!values.session) throw new UsageError("--session ID is required");
  const eventTypes = values.types ? (String(values.types).split(",") as never[]) : undefined;
  return withClient(
    values,
    "default",
    async (c) => {
      const sub = await c.subscribe(
        String(values.session),
        (e) => {
          if (values.json) process.stdout.write(JSON.stringify(e) + "\n");
          else {
            const { type, sessionId: _s, ...rest } = e as Record<string, unknown>;
            process.stdout.write(
              `${new Date().toISOString().slice(11, 23)} ${String(type).padEnd(18)} ${Object.entries(rest)
                .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : String(v)}`)
                .join(" ")}\n`,
            );
          }
        },
        { eventTypes },
      );
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      await sub.close().catch(() => undefined);
      return 0;
    },
    0,
  );
}
