/**
 * The task durations' histogram (LabelHistogram): an observation costs a few comparisons, and a scrape
 * reads exactly what prom-client's own Histogram would have exposed for the same observations.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Histogram, Registry } from "prom-client";
import { LabelHistogram } from "../src/metrics/label-histogram.js";

describe("LabelHistogram", () => {
  it("exposes what prom-client's Histogram exposes for the same observations", async () => {
    const bounds = [0.001, 0.01, 0.1, 1, 10];
    const theirs = new Registry();
    const ours = new Registry();
    const reference = new Histogram({
      name: "x_seconds",
      help: "Some durations.",
      labelNames: ["application"],
      buckets: bounds,
      registers: [theirs],
    });
    const fast = new LabelHistogram("x_seconds", "Some durations.", "application", bounds, [ours]);
    assert.equal(await ours.metrics(), await theirs.metrics(), "nothing observed: the same (empty) text");
    // On a bound, between bounds, past the last, zero; two applications, one with a quote in its name.
    const seen: [string, number][] = [
      ["a", 0],
      ["a", 0.001],
      ["a", 0.0011],
      ['b"x', 0.5],
      ["a", 10],
      ["a", 11],
      ['b"x', 3],
      ["a", 0.05],
    ];
    for (const [app, v] of seen) {
      reference.observe({ application: app }, v);
      fast.labels(app).observe(v);
    }
    const text = await ours.metrics();
    assert.equal(text, await theirs.metrics());
    assert.match(text, /^x_seconds_bucket\{le="0.001",application="a"\} 2$/m);
    assert.match(text, /^x_seconds_bucket\{le="\+Inf",application="a"\} 6$/m);
    assert.match(text, /^x_seconds_count\{application="a"\} 6$/m);
  });
});
