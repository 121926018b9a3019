// Validates rendered Kubernetes manifests (multi-document YAML on stdin)
// against the Kubernetes OpenAPI schemas, offline: kubernetes-models and
// @kubernetes-models/prometheus-operator (pinned in package-lock.json) carry
// the schemas as JSON Schema. Prints one line per object; exits 1 on any error.
import { readFileSync } from "node:fs";
import YAML from "yaml";

async function modelFor(apiVersion, kind) {
  const path =
    apiVersion === "monitoring.coreos.com/v1"
      ? `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${kind}`
      : `kubernetes-models/${apiVersion}/${kind}`;
  const module = await import(path);
  return module[kind];
}

const docs = YAML.parseAllDocuments(readFileSync(0, "utf8")).map((d) => d.toJS());
let failed = 0;
for (const doc of docs) {
  if (doc == null) continue;
  const what = `${doc.apiVersion} ${doc.kind} ${doc.metadata?.name}`;
  try {
    const Model = await modelFor(doc.apiVersion, doc.kind);
    new Model(doc).validate();
    console.log(`ok ${what}`);
  } catch (e) {
    failed += 1;
    console.log(`INVALID ${what}: ${e.message.split("\n").slice(0, 6).join(" | ")}`);
  }
}
process.exit(failed ? 1 : 0);
