/**
 * Hello, world — the client of ArmoniK's Python "Hello world" (seed 001), step by step, on zgrid.
 *
 *   node dist/examples/clients/hello.js [URL] [-p PARTITION] [-n N | -v V -v V ...]
 *
 * URL defaults to ZGRID_URL. Runs one task of the "hello" application (examples/apps/hello.js) that sums
 * the numbers 0..N-1 (or the -v values) and prints "Result : <sum>". Ctrl+C cancels the session.
 * Imports "zgrid/client" as your own project does (in this repo, Node resolves the package by its own name).
 */
import { parseArgs } from "node:util";
import { connect, decodeOutput, encodePayload, ZgridError, type TaskOptions } from "zgrid/client";

// ---- Arguments ------------------------------------------------------------------------------------
const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    partition: { type: "string", short: "p" },
    values: { type: "string", short: "v", multiple: true },
    nfirst: { type: "string", short: "n", default: "10" },
  },
});
const endpoint = positionals[0] ?? process.env.ZGRID_URL;
if (!endpoint) {
  console.error("usage: hello.js URL [-p PARTITION] [-n N | -v V ...]   (or set ZGRID_URL)");
  process.exit(2);
}
const n = Number(args.nfirst);
const numbers = args.values ? args.values.map(Number) : Array.from({ length: n }, (_, i) => i);
if (!Number.isInteger(n) || n < 0 || numbers.some((v) => !Number.isFinite(v))) {
  console.error("-v takes numbers and -n an integer");
  process.exit(2);
}

async function main(): Promise<number> {
  console.log("Hello zgrid TypeScript Example !");
  // ---- Open a connection to the server (one DEALER socket, many requests in flight) -------------
  const client = await connect(endpoint);
  let sessionId: string | undefined;

  // ---- If we stop the script, cancel the session ---------------------------------------------------
  process.once("SIGINT", () => {
    const finish = () => {
      console.log("Good bye !");
      process.exit(130);
    };
    if (!sessionId) return finish();
    client.cancelSession(sessionId).then(
      () => {
        console.log("Session has been cancelled");
        finish();
      },
      (err: Error) => {
        console.log(`Could not cancel the session: ${err.message}`);
        finish();
      },
    );
  });

  try {
    // ---- Default task options of the session -------------------------------------------------------
    const defaultTaskOptions: TaskOptions = {
      maxDuration: 300_000, // milliseconds
      priority: 1,
      maxRetries: 5,
      applicationName: "hello", // runs examples/apps/hello.js on the workers
      ...(args.partition ? { partitionId: args.partition } : {}),
    };
    // ---- Create a session ----------------------------------------------------------------------------
    sessionId = await client.createSession(defaultTaskOptions, args.partition ? [args.partition] : undefined);
    console.log(`Session ${sessionId} has been created`);

    // ---- Create the payload: the method to call and its arguments ----------------------------------
    const [payload] = await client.createResults(sessionId, [
      { name: "payload", data: encodePayload("sum", [numbers]) },
    ]);
    // ---- Create the result the task will produce -------------------------------------------------
    const resultName = `main_result_${Math.floor(Date.now() / 1000)}`;
    const [result] = await client.createResults(sessionId, [{ name: resultName }]);

    // ---- Define the task with the payload and its expected output, and submit it ---------------
    const submitted = await client.submitTasks(sessionId, [
      { payloadId: payload.resultId, expectedOutputIds: [result.resultId] },
    ]);
    console.log("Main tasks have been sent");

    for (const task of submitted) {
      // ---- Wait for the result to be available (the server answers when it is) -----------------
      const outputId = task.expectedOutputIds[0];
      const reply = await client.waitResults([outputId]);
      if (reply.statuses[outputId] === "COMPLETED") {
        // ---- Download and decode it --------------------------------------------------------------
        const value = decodeOutput<number>(await client.downloadResult(outputId));
        console.log(`Result : ${value}`);
      } else {
        // ---- The result is in error: the task says why ------------------------------------------
        const info = await client.getTask(task.taskId);
        console.log(`Errors : ${info.error ?? info.status}`);
        return 1;
      }
    }
    return 0;
  } catch (err) {
    if (!(err instanceof ZgridError)) throw err;
    console.log(`Submission error : ${err.message}`);
    return 1;
  } finally {
    console.log("Good bye !");
    await client.close();
  }
}

process.exitCode = await main();
