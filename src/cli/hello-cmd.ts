import { decodeOutput, encodePayload } from "../client/payload.js";
import { parseServerUrl } from "../client/url.js";
import { ZgridError } from "../protocol/errors.js";
import { connectChecked, firstContactMs } from "./target.js";
import { intFlag, parse, UsageError } from "./usage.js";
import { watchForIdleTasks } from "./worker-hint.js";

export const HELLO_HELP = `zgrid hello -e URL [-p PARTITION] [-v V ...] [-n N] [--timeout MS]

The hello-world client (ArmoniK's Python example): creates a session, a payload holding a list of
numbers, an output result, submits one task to the "hello" application, waits for the result and
prints "Result : <sum>".

  -e, --endpoint URL       server URL, tcp://HOST:PORT?token=TOKEN [ZGRID_URL]
  -u, --url URL            the same, named as in the other commands
      --timeout MS         give up when the server has not answered within MS ms (default 2000)
                           [ZGRID_TIMEOUT_MS]
  -p, --partition P        partition to run the task in
  -v, --values V ...       numbers to sum instead of 0..n-1
  -n, --nfirst N           sum 0 inclusive to N exclusive (default 10)
      --app NAME           application to run (default "hello")`;

export async function runHello(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      endpoint: { type: "string", short: "e" },
      url: { type: "string", short: "u" },
      timeout: { type: "string" },
      partition: { type: "string", short: "p" },
      values: { type: "string", short: "v", multiple: true },
      nfirst: { type: "string", short: "n" },
      app: { type: "string" },
    },
    true,
  );
  if (values.help) {
    process.stdout.write(HELLO_HELP + "\n");
    return 0;
  }
  // -e/--endpoint is the seed's name (ArmoniK's example); -u/--url the one the other commands take.
  if (values.endpoint && values.url) throw new UsageError("give the URL once: -e/--endpoint or -u/--url");
  const endpoint = (values.endpoint ?? values.url ?? process.env.ZGRID_URL) as string | undefined;
  if (!endpoint) throw new UsageError("-e/--endpoint URL is required (or -u/--url, or set ZGRID_URL)");
  const firstMs = firstContactMs(values);
  parseServerUrl(endpoint); // a malformed URL is a usage error, before anything is printed
  // "-v 1 2 3" as in the Python example: the numbers after the first land among the positionals.
  const raw = [...((values.values as string[] | undefined) ?? []), ...(values.values ? positionals : [])];
  if (!values.values && positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
  const numbers = raw.map((v) => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new UsageError(`-v takes numbers, not ${JSON.stringify(v)}`);
    return n;
  });
  const n = intFlag(values.nfirst, "-n", 0, 10_000_000) ?? 10;
  const list = raw.length > 0 ? numbers : Array.from({ length: n }, (_, i) => i);
  const partition = values.partition as string | undefined;

  console.log("Hello zgrid TypeScript Example !");
  const { client } = await connectChecked(endpoint, firstMs, 30_000);
  let sessionId: string | undefined;
  const onInterrupt = (): void => {
    const id = sessionId;
    if (!id) process.exit(130);
    client
      .call("sessions.cancel", { sessionId: id })
      .then(() => console.log("Session has been cancelled"))
      .catch(() => undefined)
      .finally(() => {
        console.log("Good bye !");
        process.exit(130);
      });
  };
  process.once("SIGINT", onInterrupt);
  try {
    sessionId = await client.createSession(
      {
        maxDuration: 300_000,
        priority: 1,
        maxRetries: 5,
        applicationName: (values.app as string | undefined) ?? "hello",
        ...(partition ? { partitionId: partition } : {}),
      },
      partition ? [partition] : undefined,
    );
    console.log(`Session ${sessionId} has been created`);
    const [payload] = await client.createResults(sessionId, [
      { name: "payload", data: encodePayload("sum", [list]) },
    ]);
    const [output] = await client.createResults(sessionId, [
      { name: `main_result_${Math.floor(Date.now() / 1000)}` },
    ]);
    await client.submitTasks(sessionId, [
      { payloadId: payload.resultId, expectedOutputIds: [output.resultId] },
    ]);
    console.log("Main tasks have been sent");
    const stopHint = watchForIdleTasks(client, (line) => process.stderr.write(line + "\n"));
    const waited = await client.waitResults([output.resultId]).finally(stopHint);
    if (waited.statuses[output.resultId] === "COMPLETED") {
      const value = decodeOutput<number>(await client.downloadResult(output.resultId));
      console.log(`Result : ${value}`);
      return 0;
    }
    const info = await client.getResult(output.resultId);
    const task = info.ownerTaskId ? await client.getTask(info.ownerTaskId) : null;
    console.log(`Errors : ${task?.error ?? `result is ${info.status}`}`);
    return 1;
  } catch (err) {
    if (err instanceof ZgridError) console.log(`Submission error : ${err.message}`);
    else throw err;
    return 1;
  } finally {
    process.removeListener("SIGINT", onInterrupt);
    console.log("Good bye !");
    await client.close();
  }
}
