import type { ServerContext } from "../daemons/context.js";
import { optMap, str } from "../protocol/args.js";
import type { CommandRegistrar } from "../protocol/command-map.js";
import { ErrorCode, ZgridError, invalidArgument } from "../protocol/errors.js";
import { EVENT_TYPES, type EventFilter, type EventType } from "../scheduler/events.js";
import { ownSession, seesAll } from "./access.js";

function idSet(raw: unknown, name: string): ReadonlySet<string> | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw) || !raw.every((x) => typeof x === "string"))
    throw invalidArgument(`filters.${name} must be a list of strings`);
  return new Set(raw as string[]);
}

/** The most subscriptions one client connection may hold: each multiplies the events a change sends. */
export const MAX_SUBSCRIPTIONS_PER_PEER = 64;

/** events.subscribe / unsubscribe: a session's events pushed to a DEALER client. */
export function register(map: CommandRegistrar, server: ServerContext): void {
  const scheduler = server.scheduler;
  let next = 0;

  map.register("events.subscribe", (req) => {
    const sessionId = str(req.args, "sessionId");
    ownSession(req, scheduler, sessionId);
    const rawTypes = req.args.eventTypes ?? EVENT_TYPES;
    if (!Array.isArray(rawTypes) || !rawTypes.every((t) => (EVENT_TYPES as readonly unknown[]).includes(t))) {
      throw invalidArgument(`eventTypes must be a list of ${EVENT_TYPES.join(", ")}`);
    }
    const filters = optMap(req.args, "filters") ?? {};
    for (const key of Object.keys(filters)) {
      if (!["taskIds", "resultIds", "statuses"].includes(key))
        throw invalidArgument(`unknown filter "${key}": known are taskIds, resultIds, statuses`);
    }
    const filter: EventFilter = {
      eventTypes: new Set(rawTypes as EventType[]),
      taskIds: idSet(filters.taskIds, "taskIds"),
      resultIds: idSet(filters.resultIds, "resultIds"),
      statuses: idSet(filters.statuses, "statuses"),
    };
    const held = scheduler.events.countPrefix(`${req.peer}/`);
    if (held >= MAX_SUBSCRIPTIONS_PER_PEER) {
      throw new ZgridError(
        ErrorCode.RESOURCE_EXHAUSTED,
        `this connection holds ${held} subscriptions, the most allowed: unsubscribe from some first`,
      );
    }
    const subscriptionId = `${req.peer}/${next++}`;
    // A peer that disconnected is forgotten the first time an event cannot reach it.
    const gone = (): void => void scheduler.events.removePrefix(`${req.peer}/`);
    scheduler.subscribe({ id: subscriptionId, sessionId, filter, send: (event) => req.push(event, gone) });
    return { msg: { subscriptionId, instance: server.instance } };
  });

  map.register("events.unsubscribe", (req) => {
    const subscriptionId = str(req.args, "subscriptionId");
    // A subscription is its connection's: only an admin ends another connection's (a client that
    // reconnected has lost its old ones already: they end at their first undeliverable event).
    if (!seesAll(req.caller) && !subscriptionId.startsWith(`${req.peer}/`))
      return { msg: { subscriptionId, removed: false } };
    return { msg: { subscriptionId, removed: scheduler.events.remove(subscriptionId) } };
  });
}
