/**
 * A DAG of tasks: a diamond A → B, C → D, wired with data dependencies. Each task's output is a result;
 * a task runs only once the results it depends on are COMPLETED, and reads them.
 *
 *   node dist/examples/clients/dag.js [URL]
 *
 *        A = value(3)
 *       /            \
 *   B = A + 1     C = A × 2
 *       \            /
 *        D = B + C          → 10
 *
 * URL defaults to ZGRID_URL. Runs the "graph" application (examples/apps/graph.js). The tasks are
 * submitted bottom-up, D first, to show that only the dependencies decide the order.
 * Imports "zgrid/client" as your own project does (in this repo, Node resolves the package by its own name).
 */
import { connect, decodeOutput, encodePayload } from "zgrid/client";

const client = await connect(process.argv[2] ?? process.env.ZGRID_URL);
try {
  const sessionId = await client.createSession({ applicationName: "graph" });
  // One result per node, created empty: each is the output of its task and the input of the next ones.
  const [a, b, c, d] = await client.createResults(sessionId, [
    { name: "A" },
    { name: "B" },
    { name: "C" },
    { name: "D" },
  ]);
  const node = (method: string, arg: number, output: string, dependsOn: string[] = []) => ({
    payload: encodePayload(method, [arg]),
    expectedOutputIds: [output],
    dataDependencies: dependsOn,
  });
  const [td] = await client.submitTasks(sessionId, [node("add", 0, d.resultId, [b.resultId, c.resultId])]);
  const [tb, tc] = await client.submitTasks(sessionId, [
    node("add", 1, b.resultId, [a.resultId]),
    node("mul", 2, c.resultId, [a.resultId]),
  ]);
  console.log(`D is ${(await client.getTask(td.taskId)).status} until B and C exist`);
  const [ta] = await client.submitTasks(sessionId, [node("value", 3, a.resultId)]);

  const wait = await client.waitResultsData([d.resultId], { timeoutMs: 60_000 });
  if (wait.statuses[d.resultId] !== "COMPLETED") {
    console.log(`D ended ${wait.statuses[d.resultId]}: ${(await client.getTask(td.taskId)).error}`);
    process.exitCode = 1;
  } else {
    const [va, vb, vc] = (await client.downloadResults([a.resultId, b.resultId, c.resultId])).map((x) =>
      decodeOutput<number>(x),
    );
    const vd = decodeOutput<number>(wait.data.get(d.resultId)!);
    console.log(`A = ${va}, B = ${vb}, C = ${vc}, D = ${vd}`);
    const order = await Promise.all([ta, tb, tc, td].map((t) => client.getTask(t.taskId)));
    const [A, B, C, D] = order;
    // Each task was queued (SUBMITTED) only once the tasks it depends on had ended.
    const ordered =
      A.endedAt! <= B.submittedAt! &&
      A.endedAt! <= C.submittedAt! &&
      Math.max(B.endedAt!, C.endedAt!) <= D.submittedAt!;
    console.log(ordered ? "ran in dependency order" : "UNEXPECTED order");
    process.exitCode = vd === 10 && ordered ? 0 : 1;
  }
} finally {
  await client.close();
}
