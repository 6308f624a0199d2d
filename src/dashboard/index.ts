/**
 * The web dashboard (`zgrid server --dashboard-port N`, `zgrid dashboard`): see docs/dashboard.md.
 * @packageDocumentation
 */
export { Dashboard, type DashboardOptions } from "./dashboard.js";
export { DashboardAuth, LOGIN_COOKIE } from "./auth.js";
export type { DashboardSnapshot, PartitionView, SessionView, WorkerView, HistoryPoint } from "./snapshot.js";

/** What a dashboard prints at start: where it is, and how to log in (never the token itself). */
export function dashboardBanner(url: string, authEnabled: boolean): string {
  return authEnabled
    ? `${url} (log in with the connect URL's token, or open ${url}#token=TOKEN)`
    : `${url} (no login: the grid runs without authentication)`;
}
