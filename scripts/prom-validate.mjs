// Validates Prometheus Operator objects (ServiceMonitor, PrometheusRule)
// against the JSON schemas of @kubernetes-models/prometheus-operator
// (generated from the operator's CRDs). Used by scripts/test-chart.sh and
// scripts/test-rules.sh (any file: convert its YAML documents to a JSON array).
//
//   node scripts/prom-validate.mjs NODE_DIR < objects.json
//
// stdin: a JSON array of objects; stdout: one JSON line per object,
// {"ok": true} or {"ok": false, "error": "..."}. Exit 0 unless the input
// itself is unusable.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: prom-validate.mjs NODE_DIR < objects.json");
  process.exit(2);
}
const base = `${dir}/node_modules/@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1`;
const kinds = {};
for (const kind of ["ServiceMonitor", "PrometheusRule"]) {
  kinds[kind] = (await import(pathToFileURL(`${base}/${kind}.js`).href))[kind];
}
let objects;
try {
  objects = JSON.parse(readFileSync(0, "utf8"));
} catch (e) {
  console.error(`unreadable input: ${e.message}`);
  process.exit(2);
}
for (const o of objects) {
  const Kind = o && o.apiVersion === "monitoring.coreos.com/v1" ? kinds[o.kind] : undefined;
  if (!Kind) {
    console.log(JSON.stringify({ ok: false, error: `no schema for ${o && o.apiVersion} ${o && o.kind}` }));
    continue;
  }
  try {
    new Kind(o).validate();
    console.log(JSON.stringify({ ok: true }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e.message).slice(0, 400) }));
  }
}
