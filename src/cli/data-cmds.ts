import type { ZgridClient } from "../client/client.js";
import { parseFilterText } from "../client/filter-text.js";
import type { Filter, ListQuery } from "../client/types.js";
import { escapeControls } from "../protocol/describe.js";
import { chooseColumns, listFields, type Kind } from "./list-columns.js";
import { table } from "./table.js";
import { TARGET_HELP, TARGET_OPTIONS, withClient } from "./target.js";
import { didYouMean, intFlag, parse, UsageError } from "./usage.js";

const LIST_OPTIONS = {
  ...TARGET_OPTIONS,
  json: { type: "boolean" },
  session: { type: "string", short: "s" },
  status: { type: "string" },
  filter: { type: "string", multiple: true },
  sort: { type: "string" },
  desc: { type: "boolean" },
  page: { type: "string" },
  "page-size": { type: "string" },
  limit: { type: "string" },
  fields: { type: "string" },
} as const;

/** Task statuses a cancel leaves as they are. */
const ENDED = new Set(["COMPLETED", "ERROR", "TIMEOUT", "CANCELLED", "CANCELLING"]);

const ACTIONS: Record<Kind, string[]> = {
  sessions: ["list", "get", "cancel"],
  tasks: ["list", "get", "cancel"],
  results: ["list", "get"],
};

/** Sessions are listed newest first unless --sort says otherwise: the one just made is what is looked for. */
const DEFAULT_SORT: Partial<Record<Kind, { field: string; direction: "asc" | "desc" }>> = {
  sessions: { field: "createdAt", direction: "desc" },
};

const FILTER_EXAMPLES: Record<Kind, string> = {
  sessions: `"status=RUNNING,createdAt>=2024-05-01"`,
  tasks: `"status=COMPLETED,priority>=3|status=ERROR,options.options.color=red"`,
  results: `"status=COMPLETED,size>1000000" or "name^=output-"`,
};

/** The filter of --filter (the short text form, or JSON), with --session and --status in every clause. */
function filterOf(texts: string[], also: Record<string, unknown>): Filter {
  let filter: Filter;
  try {
    if (texts.length === 1 && texts[0].trim().startsWith("{")) filter = JSON.parse(texts[0]) as Filter;
    else filter = parseFilterText(texts);
  } catch (err) {
    throw new UsageError(`--filter: ${(err as Error).message}`);
  }
  const extra = Object.entries(also).map(([field, value]) => ({
    field,
    op: Array.isArray(value) ? ("in" as const) : ("eq" as const),
    value,
  }));
  if (extra.length > 0 && Array.isArray(filter.or)) {
    filter = { or: filter.or.map((c) => ({ and: [...(c.and ?? []), ...extra] })) };
  }
  return filter;
}

/** `--sort FIELD[:desc]` (or `--desc`); a bare task option (priority, ...) means options.FIELD. */
function sortOf(text: string, desc: boolean): { field: string; direction: "asc" | "desc" } {
  let field = text;
  let direction: "asc" | "desc" = desc ? "desc" : "asc";
  const m = /^(.*):(asc|desc)$/i.exec(text);
  if (m) {
    field = m[1];
    direction = m[2].toLowerCase() as "asc" | "desc";
  }
  if (TASK_OPTION_NAMES.has(field)) field = `options.${field}`;
  return { field, direction };
}

const TASK_OPTION_NAMES = new Set([
  "maxDuration",
  "maxRetries",
  "priority",
  "partitionId",
  "applicationName",
]);

const STATUS_EXAMPLES: Record<Kind, string> = {
  sessions: "RUNNING, PAUSED, CLOSED, CANCELLED, ...",
  tasks: "SUBMITTED, PROCESSING, COMPLETED, ERROR, ...",
  results: "CREATED, COMPLETED, ABORTED, DELETED",
};

export function dataHelp(kind: Kind): string {
  const one = kind.slice(0, -1);
  const session = kind === "sessions" ? "" : "[--session ID] ";
  const lines = [
    `zgrid ${kind} list ${session}[--status S[,S]] [--filter EXPR ...] [--sort FIELD[:desc]] [--fields F,F] [--limit N] [--page N] [--json]`,
    `zgrid ${kind} get ID [--json]`,
    ...(kind === "results" ? [] : [`zgrid ${kind} cancel ID [ID ...] [--json]`]),
    ...(kind === "tasks" ? [`zgrid tasks cancel --filter EXPR [--filter EXPR ...] [--json]`] : []),
    "",
    `list: a page of ${kind}, as a table${kind === "sessions" ? ", newest first" : ""}, and how many more there are.`,
    `get: one ${one}, a line per field, times as ISO 8601 UTC (--json: milliseconds since 1970).`,
    ...(kind === "tasks"
      ? [
          "cancel: cancels tasks and says how many were, by the status they had; exit 1 when some could not",
          "be (already ended, or unknown). With --filter: cancels every unfinished task the filter matches.",
        ]
      : kind === "sessions"
        ? ["cancel: cancels each session's unfinished tasks and says how many, by the status they had."]
        : []),
    "--json prints what the server returned.",
    "",
    TARGET_HELP,
    ...(kind === "sessions" ? [] : [`  -s, --session ID               only the ${kind} of this session`]),
    `      --status S[,S]             only these statuses (${STATUS_EXAMPLES[kind]})`,
    `      --filter EXPR              only what matches EXPR: FIELD OP VALUE conditions, "," between them for`,
    `                                 AND, "|" (or another --filter) for OR; OP one of = != < <= > >= ~`,
    `                                 (contains) !~ ^= (starts with) $= (ends with); =A;B is one of A, B;`,
    `                                 e.g. ${FILTER_EXAMPLES[kind]}`,
    `                                 (a JSON filter {"or":[{"and":[...]}]} too; docs/client.md)`,
    `      --sort FIELD[:desc]        sort by any field (createdAt, status, ...), descending with :desc or --desc`,
    ...wrapHelp(
      "      --fields F[,F]             ",
      `the columns to show, of: ${listFields(kind).join(", ")}`,
    ),
    `      --limit N                  ${kind} a page (default 100, at most 10000; also --page-size)`,
    `      --page N                   which page, from 0 (default 0)`,
    `      --json                     print JSON`,
  ];
  return lines.join("\n");
}

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
  if (!ACTIONS[kind].includes(verb)) {
    const use = ACTIONS[kind].map((a) => `"${a}"`).join(", ");
    throw new UsageError(
      `unknown action "${verb}"${didYouMean(verb, ACTIONS[kind])} (zgrid ${kind} takes ${use})`,
    );
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
      if (values.limit !== undefined && values["page-size"] !== undefined)
        throw new UsageError("--limit and --page-size are one setting: give one");
      const sizeFlag = values.limit !== undefined ? "--limit" : "--page-size";
      const texts = (values.filter as string[] | undefined) ?? [];
      const query: ListQuery = {
        filter: texts.length > 0 ? filterOf(texts, filter) : filter,
        page: intFlag(values.page, "--page", 0) ?? 0,
        pageSize: intFlag(values.limit ?? values["page-size"], sizeFlag, 1, 10_000) ?? 100,
      };
      if (values.sort) query.sort = sortOf(String(values.sort), Boolean(values.desc));
      else if (DEFAULT_SORT[kind]) query.sort = DEFAULT_SORT[kind];
      // Checked before the server is asked: a wrong field costs no request.
      const columns = chooseColumns(kind, values.fields === undefined ? undefined : String(values.fields));
      const page = await withClient(values, "default", (c) => list(c, kind, query));
      const items = page.items as unknown as Record<string, unknown>[];
      if (json && values.fields !== undefined) {
        const pick = (i: Record<string, unknown>) =>
          Object.fromEntries(columns.map((c) => [c.name, i[c.name]]));
        return (print({ ...page, items: items.map(pick) }), 0);
      }
      if (json) return (print(page), 0);
      print(
        table(
          columns.map((c) => c.header),
          items.map((i) => columns.map((c) => c.cell(i))),
        ),
      );
      print(pageLine(kind, items.length, page.total, query));
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
        Object.entries(withDates(item) as object)
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
      const texts = (values.filter as string[] | undefined) ?? [];
      if (kind === "tasks" && texts.length > 0) {
        if (positionals.length > 0)
          throw new UsageError("zgrid tasks cancel takes ids or --filter, not both");
        const filter = filterOf(texts, values.session ? { sessionId: values.session } : {});
        const cancelled = await withClient(values, "default", async (c) => {
          const all: Record<string, number> = {};
          // At most 100,000 a call: again while the server says more are left.
          for (let more = true; more;) {
            const r = await c.cancelTasksWhere(filter);
            for (const [status, n] of Object.entries(r.cancelled)) all[status] = (all[status] ?? 0) + n;
            more = r.more;
          }
          return all;
        });
        if (json) return (print({ cancelled }), 0);
        const n = Object.values(cancelled).reduce((a, b) => a + b, 0);
        print(
          n === 0
            ? "no unfinished task matched: none cancelled"
            : `${n} tasks cancelled (${byStatus(cancelled)})`,
        );
        return 0;
      }
      if (positionals.length === 0) throw new UsageError(`zgrid ${kind} cancel takes one or more ids`);
      if (kind === "tasks") {
        const { cancelled, ended } = await withClient(values, "default", async (c) => {
          // The statuses before: which tasks had already ended, if some cannot be cancelled (a few, to
          // stay readable). An unknown id is the cancel's to report.
          const before = await Promise.all(
            positionals.slice(0, 20).map((id) =>
              c.getTask(id).then(
                (t) => ({ id, status: t.status as string }),
                () => ({ id, status: "" }),
              ),
            ),
          );
          const counts = (await c.cancelTasks(positionals)).cancelled;
          return { cancelled: counts, ended: before.filter((t) => ENDED.has(t.status)) };
        });
        const n = Object.values(cancelled).reduce((a, b) => a + b, 0);
        if (json)
          print({ cancelled }); // what the server returned; the exit code tells the rest
        else print(cancelLine(n, positionals.length, cancelled, ended));
        return n === positionals.length ? 0 : 1;
      }
      const out: Record<string, Record<string, number>> = await withClient(values, "default", async (c) => {
        const all: Record<string, Record<string, number>> = {};
        for (const id of positionals) all[id] = (await c.cancelSession(id)).cancelled;
        return all;
      });
      if (json) return (print(out), 0);
      for (const [id, counts] of Object.entries(out)) {
        const n = Object.values(counts).reduce((a, b) => a + b, 0);
        print(
          `session ${id} cancelled: ${n === 0 ? "no task was left to cancel" : `${n} task${n === 1 ? "" : "s"} (${byStatus(counts)})`}`,
        );
      }
      return 0;
    }
    default:
      throw new UsageError(
        `unknown action "${verb}": use list, get${kind === "results" ? "" : " or cancel"}`,
      );
  }
}

/** A help entry: `head` then `text` wrapped at 100 columns, the lines after indented as far as `head`. */
function wrapHelp(head: string, text: string): string[] {
  const lines: string[] = [];
  let line = head;
  for (const word of text.split(" ")) {
    if (line.length + word.length > 100 && line.trim().length > 0 && line.length > head.length) {
      lines.push(line.trimEnd());
      line = " ".repeat(head.length);
    }
    line += word + " ";
  }
  lines.push(line.trimEnd());
  return lines;
}

/** "1 SUBMITTED, 2 PROCESSING". */
function byStatus(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([status, n]) => `${n} ${status}`)
    .join(", ");
}

/** What a tasks cancel did, in a sentence: how many of how many, and which had already ended. */
function cancelLine(
  n: number,
  asked: number,
  counts: Record<string, number>,
  ended: { id: string; status: string }[],
): string {
  const head = `${n} of ${asked} tasks cancelled${n > 0 ? ` (${byStatus(counts)})` : ""}`;
  if (n === asked) return head;
  const which = ended.map((t) => `${t.id} had already ended (${t.status})`).join(", ");
  return `${head}; ${which || `${asked - n} had already ended`}`;
}

/** The line under a listing: how many of how many, in which order, and how to see the rest. */
function pageLine(kind: Kind, shown: number, total: number, query: ListQuery): string {
  const order = !query.sort
    ? ""
    : query.sort.field === "createdAt"
      ? query.sort.direction === "desc"
        ? ", newest first"
        : ", oldest first"
      : `, by ${query.sort.field}${query.sort.direction === "desc" ? " descending" : ""}`;
  const page = query.page ?? 0;
  const before = page * (query.pageSize ?? 100);
  const more = Math.max(0, total - before - shown);
  return `${shown} of ${total} ${kind}${order}${more > 0 ? `; ${more} more: --page ${page + 1}` : ""}`;
}

/** Times (fields ending in "At", in ms since 1970) as ISO 8601 text, in nested objects too. */
function withDates(value: unknown, key = ""): unknown {
  if (typeof value === "number" && key.endsWith("At")) return new Date(value).toISOString();
  if (Array.isArray(value)) return value.map((v) => withDates(v));
  if (typeof value === "object" && value !== null)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withDates(v, k)]));
  return value;
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
                .map(([k, v]) => `${k}=${escapeControls(Array.isArray(v) ? v.join(",") : String(v))}`)
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
