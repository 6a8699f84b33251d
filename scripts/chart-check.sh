#!/usr/bin/env bash
# Checks the Helm chart offline: helm lint --strict with each CI values file,
# the helm-unittest suites, `helm template` of each CI values file validated by
# kubeconform -strict against the oldest and newest Kubernetes schemas of the
# kubernetes-validate wheel plus the CRD fixtures in tests/chart/crd-schemas,
# and every deliberately broken values file must fail to render. The pinned
# tools come from scripts/chart-tools.sh (built once into a cache).
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=helm/advisering
CRDS=tests/chart/crd-schemas
tools=$(bash scripts/chart-tools.sh)
helm="$tools/bin/helm" kubeconform="$tools/bin/kubeconform" unittest="$tools/bin/helm-unittest"
promtool="$tools/bin/promtool"
PYTHON="${PYTHON:-python}"
mapfile -t versions < <(cut -d' ' -f1 "$tools/k8s-schemas/versions")
oldest=${versions[0]}
start=$SECONDS

echo "== chart: helm lint --strict (Kubernetes $oldest)"
for values in "$CHART"/ci/*-values.yaml; do
  "$helm" lint --strict --quiet --kube-version "$oldest" "$CHART" -f "$values" >/dev/null ||
    { "$helm" lint --strict --kube-version "$oldest" "$CHART" -f "$values"; exit 1; }
  echo "   ok $values"
done

echo "== chart: helm-unittest"
"$unittest" --color=false "$CHART" | tail -n 5

echo "== chart: helm template | kubeconform -strict (Kubernetes ${versions[*]})"
for version in "${versions[@]}"; do
  for values in "$CHART"/ci/*-values.yaml; do
    "$helm" template advisering "$CHART" --namespace advisering --kube-version "$version" \
        -f "$values" |
      "$kubeconform" -strict -summary -kubernetes-version "$version" \
        -schema-location "$tools/k8s-schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
        -schema-location "$CRDS/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" - |
      sed "s|^|   $version $(basename "$values"): |"
  done
done

echo "== chart: promtool check rules (the PrometheusRule of the production values)"
rules_file=$(mktemp --suffix=.yaml)
trap 'rm -f "$rules_file"' EXIT
"$helm" template advisering "$CHART" --kube-version "$oldest" -f "$CHART/ci/production-values.yaml" \
    --show-only templates/prometheusrule.yaml |
  "$PYTHON" -c 'import sys, yaml; print(yaml.safe_dump(yaml.safe_load(sys.stdin)["spec"]))' >"$rules_file"
"$promtool" check rules "$rules_file" | sed 's|^|   |'

echo "== chart: broken values files must be refused, each for its own reason"
for values in "$CHART"/tests-broken/*-values.yaml; do
  expect=$(sed -n 's/^# expect: //p' "$values")
  [ -n "$expect" ] || { echo "FAIL: $values has no '# expect: <regex>' line" >&2; exit 1; }
  if out=$("$helm" template advisering "$CHART" --kube-version "$oldest" -f "$values" 2>&1); then
    echo "FAIL: $values rendered, but it is broken on purpose and must be refused" >&2
    exit 1
  fi
  if ! grep -Eq -- "$expect" <<<"$out"; then
    echo "FAIL: $values was refused, but not for the expected reason /$expect/:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "   refused $(basename "$values"): $(grep -m1 -Eo -- "$expect" <<<"$out")"
done
echo "== chart: all checks passed in $((SECONDS - start)) s (after the tools)"
