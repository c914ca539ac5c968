// Validates Kubernetes objects (a JSON array on stdin, e.g. `kubectl kustomize` output
// converted to JSON) against the API schemas bundled in kubernetes-models and
// @kubernetes-models/prometheus-operator: offline, no cluster. Exits 1 naming every
// object that fails and why.
import { readFileSync } from "node:fs";

const objects = JSON.parse(readFileSync(0, "utf8"));
const groups = {
  "v1": "kubernetes-models/v1",
  "apps/v1": "kubernetes-models/apps/v1",
  "policy/v1": "kubernetes-models/policy/v1",
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};
let bad = 0;
for (const obj of objects) {
  const what = `${obj.kind}/${obj.metadata?.name}`;
  const base = groups[obj.apiVersion];
  if (!base) {
    console.error(`FAIL ${what}: no schema for apiVersion ${obj.apiVersion}`);
    bad++;
    continue;
  }
  let Model;
  try {
    Model = (await import(`${base}/${obj.kind}`))[obj.kind];
  } catch (e) {
    console.error(`FAIL ${what}: no schema for kind ${obj.kind} in ${obj.apiVersion}`);
    bad++;
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`ok   ${what}`);
  } catch (e) {
    console.error(`FAIL ${what}: ${e.message}`);
    bad++;
  }
}
process.exit(bad ? 1 : 0);
