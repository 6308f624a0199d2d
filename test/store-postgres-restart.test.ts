/**
 * What a restart keeps, on PostgreSQL: the suite store.test.ts runs on SQLite, in a file of its own so
 * that the two run side by side (each takes about a minute of restarts and running tasks).
 */
import { after } from "node:test";
import { postgres, restartSuite, stopCluster } from "./store-restart.js";

after(stopCluster);
restartSuite(postgres);
