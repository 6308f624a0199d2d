import { version as zmqVersion } from "zeromq";
import type { ServerContext } from "../daemons/context.js";
import type { CommandRegistrar } from "../protocol/command-map.js";
import { PROTOCOL_VERSION } from "../protocol/codec.js";
import { WORKER_PROTOCOL_VERSION } from "../protocol/worker-messages.js";

/** partitions.list, applications.list, workers.list, health, versions. */
export function register(map: CommandRegistrar, server: ServerContext): void {
  const scheduler = server.scheduler;
  map.register("partitions.list", () => {
    const items = scheduler.views.partitions();
    return { msg: { items, total: items.length } };
  });
  map.register("applications.list", () => {
    const items = scheduler.views.applications();
    return { msg: { items, total: items.length } };
  });
  map.register("workers.list", () => {
    const items = scheduler.views.workerList();
    return { msg: { items, total: items.length } };
  });
  map.register("health", () => ({ msg: scheduler.views.health() }));
  map.register("versions", () => ({
    msg: {
      server: server.version,
      protocol: PROTOCOL_VERSION,
      workerProtocol: WORKER_PROTOCOL_VERSION,
      node: process.versions.node,
      zmq: zmqVersion,
    },
  }));
}
