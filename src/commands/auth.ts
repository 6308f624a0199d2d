import type { ServerContext } from "../daemons/context.js";
import { isRole, permissionsOf } from "../daemons/roles.js";
import type { CommandRegistrar } from "../protocol/command-map.js";

/** auth.currentUser: who the server takes the caller for (ArmoniK's Authentication.GetCurrentUser). */
export function register(map: CommandRegistrar, server: ServerContext): void {
  map.register("auth.currentUser", (req) => {
    const { user, role, verified } = req.caller;
    return {
      msg: {
        user,
        role,
        // "*": every command.
        permissions: isRole(role) ? permissionsOf(role) : [],
        // From the users file; false: the server token (or no auth), whose user name is only claimed.
        fromUsersFile: verified,
        authEnabled: server.authEnabled,
      },
    };
  });
}
