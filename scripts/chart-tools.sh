#!/usr/bin/env bash
# Installs the chart's pinned check tools once into a cache and prints the
# directory. Nothing is downloaded when the cache already holds a version:
#   helm v3.21.4 and kubeconform v0.8.0 (go install, from the Go module proxy),
#   promtool of Prometheus v3.16.0 (go install of its Go module, v0.316.0),
#   helm-unittest v1.1.2 (built from a wrapper module: its go.mod carries a
#     `replace`, so a plain `go install` refuses it; the wrapper repeats it),
#   Kubernetes JSON schemas of the oldest and newest version the
#     kubernetes-validate wheel ships (a dev dependency), made standalone by
#     scripts/k8s_schemas.py so kubeconform can follow their $refs.
# ADVISERING_TOOLS_DIR (read by this script only) moves the cache; default
# ~/.cache/advisering/tools. Go's own module and build caches are put inside
# it while building (so deleting the directory gives a truly cold run) and
# removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v3.21.4
KUBECONFORM_VERSION=v0.8.0
# Prometheus v3.x is published to the module proxy as v0.3xx.y (3.16.0 = v0.316.0)
PROMTOOL_VERSION=v0.316.0
HELM_UNITTEST_VERSION=v1.1.2
# the replace line of helm-unittest v1.1.2's own go.mod
HELM_UNITTEST_REPLACE='github.com/vmware-labs/yaml-jsonpath v0.3.2 => github.com/helm-unittest/yaml-jsonpath v0.4.0'

TOOLS="${ADVISERING_TOOLS_DIR:-$HOME/.cache/advisering/tools}"
PYTHON="${PYTHON:-python}"
mkdir -p "$TOOLS/bin"
export GOMODCACHE="$TOOLS/go/mod" GOCACHE="$TOOLS/go/build" GOPATH="$TOOLS/go/path"
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-modcacherw"

say() { echo "== chart-tools: $*" >&2; }
built=0

# go_install NAME VERSION PACKAGE: one binary per version, bin/NAME linked to it.
go_install() {
  local name=$1 version=$2 package=$3 dir="$TOOLS/$1-$2"
  if [ ! -x "$dir/$name" ]; then
    command -v go >/dev/null || { say "building $name needs Go 1.26 on PATH"; exit 1; }
    say "installing $name $version"
    GOBIN="$dir" go install "$package@$version"
    built=1
  fi
  ln -sfn "$dir/$name" "$TOOLS/bin/$name"
}

go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm
go_install kubeconform "$KUBECONFORM_VERSION" github.com/yannh/kubeconform/cmd/kubeconform
go_install promtool "$PROMTOOL_VERSION" github.com/prometheus/prometheus/cmd/promtool

unittest_dir="$TOOLS/helm-unittest-$HELM_UNITTEST_VERSION"
if [ ! -x "$unittest_dir/helm-unittest" ]; then
  say "building helm-unittest $HELM_UNITTEST_VERSION from a wrapper module"
  wrapper="$TOOLS/src/helm-unittest-wrapper"
  rm -rf "$wrapper" && mkdir -p "$wrapper" "$unittest_dir"
  cat >"$wrapper/go.mod" <<MOD
module advisering.local/helm-unittest-wrapper

go 1.26.0

replace $HELM_UNITTEST_REPLACE
MOD
  (cd "$wrapper" &&
    go get "github.com/helm-unittest/helm-unittest/cmd/helm-unittest@$HELM_UNITTEST_VERSION" &&
    go build -o "$unittest_dir/helm-unittest" github.com/helm-unittest/helm-unittest/cmd/helm-unittest)
  built=1
fi
ln -sfn "$unittest_dir/helm-unittest" "$TOOLS/bin/helm-unittest"

# Go's module and build caches (about 5 GB after promtool) only serve a rebuild
# of these pinned versions; the binaries are all that is kept.
if [ "$built" = 1 ]; then
  say "removing Go's caches of the build"
  go clean -cache -modcache
fi

schemas="$TOOLS/k8s-schemas"
wheel_version=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("kubernetes-validate"))')
if [ ! -f "$schemas/.from-$wheel_version" ]; then
  say "writing standalone Kubernetes schemas from kubernetes-validate $wheel_version"
  rm -rf "$schemas" && mkdir -p "$schemas"
  "$PYTHON" scripts/k8s_schemas.py "$schemas" oldest newest >"$schemas/versions"
  touch "$schemas/.from-$wheel_version"
fi
echo "$TOOLS"
