/** The ZAP thread's entry point (see ZapThread): answers the ZAP requests of every socket of the process. */
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from "node:worker_threads";
import { Reply } from "zeromq";
import { createLogger } from "../log.js";
import { z85Encode } from "../protocol/z85.js";
import type { AllowLists, FromZapThread, ToZapThread, ZapThreadInit } from "./zap-thread.js";

/** Where libzmq sends its ZAP requests (RFC 27). */
const ZAP_ENDPOINT = "inproc://zeromq.zap.01";
/** How often, at most, refused keys are logged (a stranger retrying must not flood the log). */
const REFUSED_LOG_MS = 10_000;

type Frame = Buffer | string;

/** Judges one request: [version, requestId, domain, address, identity, mechanism, credentials...]. */
export class ZapJudge {
  private allowed: { clients: Set<string> | null; workers: Set<string> | null };

  constructor(lists: AllowLists) {
    this.allowed = ZapJudge.sets(lists);
  }

  private static sets(lists: AllowLists): ZapJudge["allowed"] {
    return {
      clients: lists.clients && new Set(lists.clients),
      workers: lists.workers && new Set(lists.workers),
    };
  }

  setLists(lists: AllowLists): void {
    this.allowed = ZapJudge.sets(lists);
  }

  /** The reply frames, and the refused key (for the log) when the peer is not let in. */
  answer(frames: Buffer[]): { reply: Frame[]; refused?: { domain: string; key: string; address: string } } {
    const id = frames[1] ?? Buffer.alloc(0);
    const reply = (code: string, text: string, user = ""): Frame[] => ["1.0", id, code, text, user, ""];
    if (frames.length < 6 || frames[0].toString() !== "1.0")
      return { reply: reply("500", "bad ZAP request") };
    const domain = frames[2].toString();
    const address = frames[3].toString();
    if (frames[5].toString() !== "CURVE" || frames.length < 7 || frames[6].length !== 32) {
      return { reply: reply("400", "CurveZMQ is required") };
    }
    const key = z85Encode(frames[6]);
    const list =
      domain === "clients" ? this.allowed.clients : domain === "workers" ? this.allowed.workers : undefined;
    // An unknown domain is refused: a socket that names one nobody lists is a mistake, not an open door.
    if (list === undefined) return { reply: reply("400", `unknown ZAP domain ${domain}`) };
    if (list === null || list.has(key)) return { reply: reply("200", "OK", key) };
    return { reply: reply("400", "this public key is not allowed"), refused: { domain, key, address } };
  }
}

async function main(port: MessagePort, init: ZapThreadInit): Promise<void> {
  const log = createLogger(init.logLevel).child({ thread: "zap" });
  const judge = new ZapJudge(init.lists);
  const socket = new Reply({ linger: 0 });
  let refusedSinceLog = 0;
  let lastRefusedLog = 0;
  process.on("uncaughtException", (err) => log.error({ err }, "ZAP thread error (it keeps serving)"));
  process.on("unhandledRejection", (err) => log.error({ err }, "ZAP thread error (it keeps serving)"));
  const handle = (m: ToZapThread): void => {
    switch (m.t) {
      case "lists":
        judge.setLists(m.lists);
        break;
      case "close-now": {
        if (!socket.closed) socket.close();
        const flag = new Int32Array(init.closed);
        Atomics.store(flag, 0, 1);
        Atomics.notify(flag, 0);
        break;
      }
      case "stop":
        if (!socket.closed) socket.close();
        log.flush?.();
        port.close();
        break;
    }
  };
  port.on("message", handle);
  try {
    await socket.bind(ZAP_ENDPOINT);
  } catch (err) {
    port.postMessage({ t: "failed", message: (err as Error).message } satisfies FromZapThread);
    port.close();
    return;
  }
  port.postMessage({ t: "listening" } satisfies FromZapThread);
  try {
    for await (const frames of socket) {
      // Lists sent before this handshake began are in force for it: the port's messages and the ZAP
      // requests come by two ways, and a request could be answered before the lists that a reload had
      // sent (a key listed by the reload was refused, once in an npm test run).
      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port))
        handle(m.message as ToZapThread);
      const { reply, refused } = judge.answer(frames);
      await socket.send(reply);
      if (refused) {
        refusedSinceLog++;
        const now = Date.now();
        if (now - lastRefusedLog >= REFUSED_LOG_MS) {
          log.warn(
            { ...refused, refused: refusedSinceLog },
            `a CurveZMQ public key not in the --curve-${refused.domain} list was refused`,
          );
          refusedSinceLog = 0;
          lastRefusedLog = now;
        }
      }
    }
  } catch (err) {
    if (!socket.closed) log.error({ err }, "the ZAP handler stopped");
  }
}

await main(parentPort!, workerData as ZapThreadInit);
