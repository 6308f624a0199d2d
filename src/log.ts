import { Writable } from "node:stream";
import { pino, type Logger } from "pino";

export type { Logger };

const LEVELS: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO",
  40: "WARN",
  50: "ERROR",
  60: "FATAL",
};

/** One line a record on a terminal: time, level, message, then the other fields as key=value. */
function prettyStream(out: NodeJS.WriteStream): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) {
        if (!line) continue;
        try {
          const rec = JSON.parse(line) as Record<string, unknown>;
          const { time, level, msg, pid: _pid, hostname: _host, ...rest } = rec;
          const extra = Object.entries(rest)
            .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
            .join(" ");
          const t = new Date(Number(time)).toISOString().slice(11, 23);
          out.write(
            `${t} ${(LEVELS[Number(level)] ?? String(level)).padEnd(5)} ${String(msg ?? "")}${extra ? "  " + extra : ""}\n`,
          );
        } catch {
          out.write(line + "\n");
        }
      }
      done();
    },
  });
}

/** Log bytes held while stderr does not take them (a full disk under a redirected log): past it, dropped. */
const LOG_BUFFER_BYTES = 8 * 1024 * 1024;

let logWriteFailures = 0;
let droppedLogLines = 0;

/** Log lines lost: more waited for stderr to take them (ENOSPC, say) than LOG_BUFFER_BYTES. */
export function logLinesDropped(): number {
  return droppedLogLines;
}

/** Times writing the log to stderr failed (each is tried again with the next line). */
export function logWriteErrors(): number {
  return logWriteFailures;
}

/** pino to stderr: JSON lines, or readable lines when stderr is a terminal (ZGRID_LOG_FORMAT=json|pretty overrides). */
export function createLogger(level = "info", name = "zgrid"): Logger {
  const format = process.env.ZGRID_LOG_FORMAT ?? (process.stderr.isTTY ? "pretty" : "json");
  const options = { name, level, base: { pid: process.pid } };
  if (format === "pretty") return pino(options, prettyStream(process.stderr));
  const dest = pino.destination({ fd: 2, sync: false, maxLength: LOG_BUFFER_BYTES });
  // A log that cannot be written (stderr redirected to a full disk) must not take the process down:
  // an 'error' nobody listened to ended the server. What waits is written once stderr takes it again
  // (the next line tries); meanwhile at most LOG_BUFFER_BYTES wait, and lines past that are dropped.
  dest.on("error", () => {
    logWriteFailures++;
  });
  dest.on("drop", () => {
    droppedLogLines++;
  });
  return pino(options, dest);
}
