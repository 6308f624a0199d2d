/**
 * A module resolve hook: an application module importing `zgrid/worker` (or `zgrid/client`, ...) from a
 * directory where Node finds no `zgrid` package gets this worker's own copy, as if it were installed
 * beside the app. Real resolution always comes first: an app with its own node_modules/zgrid keeps it.
 * Registered by an executor thread that loads an app from such a directory (app-loader.ts).
 */
import type { ResolveHook } from "node:module";

// dist/src/worker/ → the package root: resolving from its package.json is a self-reference ("exports").
const PACKAGE_JSON = new URL("../../../package.json", import.meta.url).href;

export const resolve: ResolveHook = async (specifier, context, nextResolve) => {
  try {
    return await nextResolve(specifier, context);
  } catch (err) {
    const wanted = specifier === "zgrid" || specifier.startsWith("zgrid/");
    if (!wanted || (err as { code?: string }).code !== "ERR_MODULE_NOT_FOUND") throw err;
    return nextResolve(specifier, { ...context, parentURL: PACKAGE_JSON });
  }
};
