export { Server, type ConnectionInfo } from "./server.js";
export { serverConfig, SERVER_OPTIONS, type ServerConfig } from "./config.js";
