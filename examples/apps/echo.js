// echo: the smallest zgrid application. `echo(x)` returns its argument unchanged.
// Payload: { method: "echo", args: pack([x]) } → output: pack(x).
import { ServiceBase, defineService } from "zgrid/worker";

class EchoService extends ServiceBase {
  echo(x) {
    return x;
  }
}

export const { createService, enterSession, call, leaveSession, destroyService } = defineService(
  () => new EchoService(),
);
