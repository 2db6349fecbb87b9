#!/usr/bin/env bash
# The example GitOps repo must check clean (no warnings), be formatted, pass its
# scenario tests (examples/policies/tests/*.test.yaml), compile,
# and its compiled TollPolicies must be accepted by a real API server with the
# generated CRDs installed. Needs KUBECONFIG pointing at the test API server.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

[ -n "${KUBECONFIG:-}" ] || die "KUBECONFIG is not set: run scripts/test.sh, or start scripts/apiserver.sh first"
[ "$(kubectl config current-context)" = testbed ] || die "refusing to use a cluster whose context is not 'testbed'"

tg=$(tollgate_bin)
py=$(python_env)
policies=examples/policies
out=$(mktemp -d)
ns=t-examples-$RANDOM$RANDOM
trap 'rm -rf "$out"; kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true' EXIT

"$tg" check --deny-warnings "$policies"
"$tg" fmt --check "$policies"
"$tg" test "$policies"
"$tg" compile "$policies" --namespace "$ns" --fleet edge --output "$out"

kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=30s -f crds/ >/dev/null
kubectl create namespace "$ns" >/dev/null
kubectl apply --server-side -f "$out" >/dev/null

# Every tenant file became exactly one TollPolicy, accepted by the server.
want=$(grep -l '^tenant ' -r "$policies" --include='*.tgp' | xargs sed -n 's/^tenant \([a-z0-9-]*\).*/\1/p' | sort | tr '\n' ' ')
got=$(kubectl get tollpolicies -n "$ns" -o jsonpath='{range .items[*]}{.spec.tenant}{"\n"}{end}' | sort | tr '\n' ' ')
[ "$want" = "$got" ] || die "tenants in the API server ($got) differ from the policy files ($want)"
# What the server stored is what was compiled (no field pruned by the schema).
for f in "$out"/*.yaml; do
  name=$(sed -n 's/^  name: //p' "$f" | head -1)
  kubectl get tollpolicy -n "$ns" "$name" -o json | "$py" -c '
import json, sys, yaml
stored = json.load(sys.stdin)["spec"]
compiled = yaml.safe_load(open(sys.argv[1]))["spec"]
sys.exit(0 if stored == compiled else "stored spec differs from compiled spec for " + sys.argv[1])
' "$f"
done
echo "examples: $(echo "$got" | wc -w) TollPolicies accepted by the API server and read back unchanged"
