/**
 * SessionService (ArmoniK's SDK, seed 000): configuration from a file and the environment, tasks
 * submitted as method calls, outcomes delivered to a handler, waitResults.
 *
 *   node dist/examples/clients/session-service.js [URL]
 *
 * URL defaults to ZGRID_URL (read by loadClientConfig, with ZGRID_TOKEN, ZGRID_APPLICATION_NAME, ...).
 * Runs the "addition" application (examples/apps/addition.js): 10 additions, and one call with wrong
 * arguments to show an error reaching the handler. Exits 0 when every outcome is the expected one.
 * Imports "zgrid/client" as your own project does (in this repo, Node resolves the package by its own name).
 */
import { pack, unpack } from "msgpackr";
import { SessionService, WaitBehavior, type ServiceInvocationHandler, type TaskRequest } from "zgrid/client";

// ---- Configure: the file named by ZGRID_CLIENT_CONFIG if any, the environment, then these -------
const url = process.argv[2];
const service = SessionService.fromConfig({
  overrides: { ...(url ? { endpoint: url } : {}), applicationName: "addition", maxRetries: 1 },
});

// ---- A handler: called once per task, with the serialized output or the error -------------------
const sums = new Map<string, number>();
const errors = new Map<string, string>();
const handler: ServiceInvocationHandler = {
  handleResponse(data, taskId) {
    sums.set(taskId, unpack(data) as number);
  },
  handleError(error, taskId) {
    errors.set(taskId, error.message);
  },
};

try {
  // ---- Submit: each request names a method and carries its serialized arguments -----------------
  const requests: TaskRequest[] = Array.from({ length: 10 }, (_, i) => ({
    method: "add",
    args: pack([i, 100]),
  }));
  const ids = await service.submit(requests, handler);
  const [bad] = await service.submit([{ method: "add", args: pack(["one", 2]) }], handler);
  console.log(`session ${await service.getSessionId()}: ${ids.length + 1} tasks submitted`);

  // ---- Wait for the first outcome, then for all of them --------------------------------------------
  await service.waitResults(ids, WaitBehavior.Any);
  console.log(`first outcome in: ${sums.size + errors.size} task(s) done`);
  await service.waitResults([], WaitBehavior.All);

  ids.forEach((id, i) => console.log(`add(${i}, 100) = ${sums.get(id)}`));
  console.log(`add("one", 2) failed: ${errors.get(bad)}`);
  const ok = ids.every((id, i) => sums.get(id) === i + 100) && errors.has(bad) && errors.size === 1;
  console.log(ok ? "all outcomes as expected" : "UNEXPECTED outcomes");
  process.exitCode = ok ? 0 : 1;
} finally {
  // ---- cleanup() cancels the session (nothing is left running) and closes the connection ---------
  await service.cleanup();
}
