/**
 * Checks of the deployment files (no Docker engine or cluster here): every Kubernetes document is
 * valid against the API's OpenAPI schemas (kubernetes-models), `kubectl kustomize` renders the
 * kustomization; the probes call `ruok` with the data dir (whose key pair they use with --curve); the HPA scales on zgrid_queue_length; the server mounts
 * /data; the Dockerfile runs as non-root from the built CLI.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";
import { describe, it } from "node:test";
import { Deployment, StatefulSet } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { ConfigMap, Secret, Service } from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";
import { STANDBY_FILE } from "../src/cli/server-cmd.js";
import { CLI, ROOT } from "./helpers.js";

/** apiVersion/kind → its model, whose validate() checks an object against the API's schema. */
const MODELS: Record<string, new (data: object) => { validate(): void }> = {
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
};

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** Parses YAML text into its objects; a syntax error fails with the file's name. */
function objects(text: string, what: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      assert.equal(doc.errors.length, 0, `${what}: ${doc.errors.map((e) => e.message).join("; ")}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** Validates one object against its kind's schema; the error names the object and the field. */
function validate(o: K8sObject, what: string): void {
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  assert.ok(Model, `${what}: no schema known for ${o.apiVersion} ${o.kind}`);
  try {
    new Model(o).validate();
  } catch (err) {
    assert.fail(`${what}: ${o.kind} ${o.metadata?.name}: ${(err as Error).message}`);
  }
}

const kubectl = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" }).status === 0;

const K8S = join(ROOT, "deploy/kubernetes");
const read = (file: string): string => readFileSync(join(K8S, file), "utf8");

/** The YAML documents of a file, split on `---` lines, comment-only documents dropped. */
function documents(text: string): string[] {
  return text
    .split(/^---\s*$/m)
    .filter((d) => d.split("\n").some((l) => l.trim() !== "" && !l.trim().startsWith("#")));
}

describe("deployment files", () => {
  const files = readdirSync(K8S).filter((f) => f.endsWith(".yaml"));

  it("every Kubernetes document has apiVersion, kind and metadata.name, and no tabs", () => {
    assert.ok(files.length >= 6, `found ${files.join(", ")}`);
    const kinds: string[] = [];
    for (const file of files) {
      const text = read(file);
      assert.doesNotMatch(text, /\t/, `${file} has a tab`);
      for (const doc of documents(text)) {
        assert.match(doc, /^apiVersion: \S+/m, `${file}: apiVersion`);
        const kind = /^kind: (\S+)/m.exec(doc)?.[1];
        assert.ok(kind, `${file}: kind`);
        assert.match(doc, /^metadata:\n(?: {2}.*\n)*? {2}name: \S+/m, `${file} (${kind}): metadata.name`);
        kinds.push(kind);
      }
    }
    for (const k of [
      "StatefulSet",
      "Service",
      "Deployment",
      "HorizontalPodAutoscaler",
      "Secret",
      "ConfigMap",
    ])
      assert.ok(kinds.includes(k), `a ${k}`);
  });

  it("every object is valid against the Kubernetes API schemas", () => {
    let n = 0;
    for (const file of files.filter((f) => f !== "kustomization.yaml")) {
      for (const o of objects(read(file), file)) {
        validate(o, file);
        n++;
      }
    }
    assert.ok(n >= 9, `${n} objects`);
    // The check can fail: a replica count that is not a number is refused.
    const bad = objects(read("server.yaml"), "server.yaml").find((o) => o.kind === "StatefulSet")!;
    (bad.spec as { replicas: unknown }).replicas = "one";
    assert.throws(() => validate(bad, "a broken copy"), /replicas/);
  });

  it(
    "kubectl kustomize renders the kustomization: valid objects, all labelled part-of zgrid, the image pinned",
    { skip: kubectl ? false : "kubectl is not installed" },
    () => {
      const out = spawnSync("kubectl", ["kustomize", K8S], { encoding: "utf8", timeout: 60_000 });
      assert.equal(out.status, 0, out.stderr);
      const rendered = objects(out.stdout, "kubectl kustomize");
      const kinds = rendered.map((o) => o.kind).sort();
      assert.deepEqual(kinds, [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Service",
        "Service",
        "Service",
        "StatefulSet",
      ]);
      for (const o of rendered) {
        validate(o, "rendered");
        assert.equal(
          o.metadata.labels?.["app.kubernetes.io/part-of"],
          "zgrid",
          `${o.kind} ${o.metadata.name}`,
        );
      }
      const images = [...out.stdout.matchAll(/image: (\S+)/g)].map((m) => m[1]);
      assert.ok(images.length >= 2, "the server and the worker name an image");
      for (const image of images) assert.equal(image, "zgrid:0.1.0");
    },
  );

  it(
    "the PostgreSQL variant renders two server replicas on --store postgres --standby, the URL from a Secret, no volume claim, a standby alive by its marker",
    { skip: kubectl ? false : "kubectl is not installed" },
    () => {
      const dir = join(ROOT, "deploy/kubernetes-postgres");
      const out = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8", timeout: 60_000 });
      assert.equal(out.status, 0, out.stderr);
      const rendered = objects(out.stdout, "kubectl kustomize deploy/kubernetes-postgres");
      for (const o of rendered) validate(o, "rendered");
      const set = rendered.find((o) => o.kind === "StatefulSet") as unknown as {
        spec: {
          replicas: number;
          podManagementPolicy: string;
          volumeClaimTemplates?: unknown;
          template: {
            spec: {
              volumes: { name: string; emptyDir?: object }[];
              containers: {
                args: string[];
                env: { name: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
                livenessProbe: { exec: { command: string[] } };
                readinessProbe: { exec: { command: string[] } };
              }[];
            };
          };
        };
      };
      assert.equal(set.spec.replicas, 2);
      assert.equal(set.spec.podManagementPolicy, "Parallel");
      assert.equal(set.spec.volumeClaimTemplates, undefined);
      assert.deepEqual(set.spec.template.spec.volumes, [{ name: "data", emptyDir: {} }]);
      const c = set.spec.template.spec.containers[0];
      assert.deepEqual(c.args.slice(-3), ["--store", "postgres", "--standby"]);
      assert.deepEqual(c.env.find((e) => e.name === "ZGRID_PG_URL")?.valueFrom?.secretKeyRef, {
        name: "zgrid-postgres",
        key: "url",
      });
      // Alive: a standby by the file it keeps in its data dir while it waits, an owner by ruok; ready:
      // the owner only, so that the Services send clients and workers to it.
      const live = c.livenessProbe.exec.command.join(" ");
      assert.match(live, new RegExp(`test -f /data/${STANDBY_FILE} \\|\\| node \\S+ ruok `));
      assert.doesNotMatch(c.readinessProbe.exec.command.join(" "), /standby/);
      assert.ok(c.args.includes("--data-dir") && c.args[c.args.indexOf("--data-dir") + 1] === "/data");
    },
  );

  it("the kustomization lists files that exist", () => {
    const listed = [...read("kustomization.yaml").matchAll(/^ {2}- (\S+\.yaml)$/gm)].map((m) => m[1]!);
    assert.ok(listed.length >= 4);
    for (const f of listed) assert.ok(files.includes(f), `${f} is missing`);
  });

  it("the server StatefulSet mounts /data from a claim, takes the token from a Secret, probes with ruok --data-dir /data", () => {
    const s = read("server.yaml");
    assert.match(s, /^kind: StatefulSet$/m);
    assert.match(s, /volumeClaimTemplates:\n\s+- metadata:\n\s+name: data/);
    assert.match(s, /- name: data\n\s+mountPath: \/data/);
    assert.match(s, /- --data-dir\n\s+- \/data/);
    assert.match(s, /- --prometheus-port\n\s+- "9464"/);
    assert.match(s, /name: ZGRID_SERVER_TOKEN\n\s+valueFrom:\n\s+secretKeyRef:/);
    for (const probe of ["livenessProbe", "readinessProbe"]) {
      const block = s.slice(s.indexOf(probe));
      assert.match(
        block,
        /^\s+exec:\n\s+command:\n(?:\s+- .*\n)*?\s+- node \/app\/dist\/src\/cli\/main\.js ruok .*--data-dir \/data .*--url "tcp:\/\/127\.0\.0\.1:5557\?token=\$\{ZGRID_SERVER_TOKEN\}"/m,
        probe,
      );
    }
    for (const port of [5555, 5556, 5557, 5558, 9464])
      assert.match(s, new RegExp(`containerPort: ${port}\\b`));
  });

  it("the Services expose every port, the worker connects to zgrid-worker:5558 with the worker token", () => {
    const svc = read("services.yaml");
    for (const port of [5555, 5556, 5557, 5558, 9464]) assert.match(svc, new RegExp(`port: ${port}\\b`));
    const w = read("worker.yaml");
    assert.match(w, /^kind: Deployment$/m);
    assert.match(w, /- worker\n\s+- --connect\n\s+- tcp:\/\/zgrid-worker:5558\?token=\$\(TOKEN\)/);
    // The worker token, never the client token; the server is given the same one.
    assert.match(
      w,
      /name: TOKEN\n\s+valueFrom:\n\s+secretKeyRef:\n\s+name: zgrid-token\n\s+key: workerToken/,
    );
    assert.match(
      read("server.yaml"),
      /name: ZGRID_WORKER_TOKEN\n\s+valueFrom:\n\s+secretKeyRef:\n\s+name: zgrid-token\n\s+key: workerToken/,
    );
    assert.match(w, /- --app-path\n\s+- (\S+)/);
  });

  it("the HPA scales the worker Deployment on zgrid_queue_length; the adapter rule serves it", () => {
    const h = read("hpa.yaml");
    assert.match(h, /^apiVersion: autoscaling\/v2$/m);
    assert.match(h, /scaleTargetRef:\n\s+apiVersion: apps\/v1\n\s+kind: Deployment\n\s+name: zgrid-worker/);
    assert.match(h, /type: External\n\s+external:\n\s+metric:\n\s+name: zgrid_queue_length/);
    assert.match(read("prometheus-adapter-rules.yaml"), /seriesQuery: 'zgrid_queue_length\{/);
  });

  it("the Dockerfile: multi-stage on node:20-slim, non-root, VOLUME /data, an ENTRYPOINT that was built", () => {
    const d = readFileSync(join(ROOT, "Dockerfile"), "utf8");
    assert.equal(d.match(/^FROM node:20-slim\b/gm)?.length, 2);
    const user = /^USER (\S+)/m.exec(d)?.[1];
    assert.ok(user && user !== "root" && user !== "0", `USER ${user}`);
    assert.match(d, /^VOLUME \/data$/m);
    // The idle server's addon: built in the first stage by zgrid's install script, copied to where
    // dist/src/gc.js looks for it (two levels up from dist/src).
    assert.match(d, /&& npm run install\b/);
    assert.match(
      d,
      /^COPY --from=build \/app\/native\/idle-memory\/build\/Release\/idle_memory\.node \.\/native\/idle-memory\/build\/Release\/$/m,
    );
    assert.match(d, /^EXPOSE 5555 5556 5557 5558\b/m);
    assert.match(d, /^HEALTHCHECK .*\n(?:.*\\\n)*?.*\bruok\b.* --data-dir \/data\b/m);
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(d)?.[1];
    assert.deepEqual(JSON.parse(entry!), ["node", "/app/dist/src/cli/main.js"]);
    assert.deepEqual(JSON.parse(/^CMD (\[.*\])$/m.exec(d)![1]!), [
      "server",
      "--host",
      "0.0.0.0",
      "--data-dir",
      "/data",
    ]);
    // The entry point is the CLI the build produces: its path under the final stage's WORKDIR (the
    // image's copy of the build context) is where tsc puts src/cli/main.ts, the file package.json names
    // as the zgrid command, and the one these tests run.
    const workdirs = [...d.matchAll(/^WORKDIR (\S+)$/gm)].map((m) => m[1]!);
    const appDir = workdirs[workdirs.length - 1]!;
    const entryPath = (JSON.parse(entry!) as string[])[1]!;
    assert.ok(entryPath.startsWith(`${appDir}/`), `the entry point ${entryPath} is under WORKDIR ${appDir}`);
    const inContext = posix.relative(appDir, entryPath);
    const ts = (
      JSON.parse(readFileSync(join(ROOT, "tsconfig.json"), "utf8")) as {
        compilerOptions: { outDir: string; rootDir: string };
      }
    ).compilerOptions;
    const built = posix
      .join(ts.outDir, posix.relative(ts.rootDir, "src/cli/main.ts"))
      .replace(/\.ts$/, ".js");
    assert.equal(inContext, built, "the entry point is where tsc writes src/cli/main.ts");
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { bin: { zgrid: string } };
    assert.equal(
      inContext,
      posix.normalize(pkg.bin.zgrid),
      "the entry point is package.json's zgrid command",
    );
    assert.equal(join(ROOT, inContext), CLI, "the entry point is the CLI these tests run");
    assert.ok(existsSync(join(ROOT, inContext)), `${inContext} was built`);
    // The final stage copies it from the build stage.
    const copied = [...d.matchAll(/^COPY --from=build (\S+) (\S+)$/gm)].some(
      ([, from, to]) =>
        posix.relative(appDir, from!) === posix.normalize(to!) &&
        !posix.relative(posix.join(appDir, to!), entryPath).startsWith(".."),
    );
    assert.ok(copied, `no COPY --from=build brings ${entryPath} into the final stage`);
    for (const src of [...d.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(" ")))
      assert.ok(existsSync(join(ROOT, src)), `COPY ${src}: missing from the build context`);
  });
});
