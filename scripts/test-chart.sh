#!/usr/bin/env bash
# The Helm chart (charts/tollgate) and the example SBC manifests
# (examples/sbc), offline, with the real Helm engine (PyPI helm-python-sdk,
# Helm v4): the chart's CRDs are the generated crds/*.yaml; helm lint
# (strict); renders with the default values and other value sets
# (serviceMonitor, watchNamespace, prometheusRule, one replica with Secrets,
# no webhook); every rendered object and every example manifest validated:
# built-in kinds against the Kubernetes JSON schemas (PyPI
# kubernetes-validate, strict, Kubernetes 1.29 and 1.37), ServiceMonitor and
# PrometheusRule against the Prometheus Operator's schemas (npm
# @kubernetes-models/prometheus-operator), SbcFleet against
# crds/sbcfleets.yaml (strict) and its CEL rule; security properties of the
# Deployments (non-root, read-only root fs, no privilege escalation,
# capabilities dropped, resources), RBAC without wildcards and exactly the
# operator's list; values the schema or templates must refuse.
#
#   scripts/test-chart.sh
#
# Details: scripts/chart-check.py. Under a minute once the tools are cached.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

say "tools: helm-python-sdk, kubernetes-validate (PyPI), Prometheus Operator schemas (npm)"
PY=$(python_env)
NODE_DIR=$(node_env)
"$PY" -c 'import helm_python as h, kubernetes_validate as k; print("  helm engine", h.helm_sdk_version(), "| kubernetes-validate", k.__version__ if hasattr(k, "__version__") else "", "schemas", ", ".join(k.utils.all_versions()[:1] + ["..."] + k.utils.all_versions()[-1:]))'

"$PY" scripts/chart-check.py "$ROOT" "$NODE_DIR"
