export { EtcdRegistrar, ETCD_PREFIX, type EtcdOptions } from "./etcd.js";
export {
  KubernetesRegistrar,
  defaultExternal,
  defaultNamespace,
  hostIp,
  type KubernetesOptions,
} from "./kubernetes.js";
export { IntegrationError, type Registrar, type RegistrarDeps, type ServiceRecord } from "./types.js";
