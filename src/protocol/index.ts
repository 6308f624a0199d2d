export * from "./errors.js";
export * from "./codec.js";
export * from "./command-map.js";
