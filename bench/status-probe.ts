/**
 * The `status_under_load` prober, on a thread of its own so that the bench's load clients (which encode
 * 5,000-task submissions on the main thread) do not delay its round trips: `ruok` every `intervalMs`
 * until `deadline`, then the round-trip times in milliseconds.
 */
import { parentPort, workerData } from "node:worker_threads";
import { connect } from "../src/client/client.js";

export interface ProbeInput {
  url: string;
  deadline: number;
  intervalMs: number;
}

const { url, deadline, intervalMs } = workerData as ProbeInput;
const client = await connect(url, { timeoutMs: 30_000 });
const samples: number[] = [];
while (Date.now() < deadline) {
  const t0 = process.hrtime.bigint();
  await client.ruok();
  samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  await new Promise((r) => setTimeout(r, intervalMs));
}
await client.close();
parentPort!.postMessage(samples);
