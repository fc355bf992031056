#!/usr/bin/env bash
# Build the binaries of a real Kubernetes control plane from the Go module proxy:
# kube-apiserver, kube-controller-manager, kube-scheduler, etcd and the KWOK controller; and
# what deploying ooda onto it takes: helm, and KubeRay's RayService CRD (from the
# ray-operator module's own config/crd/bases).
#
# Nothing is committed but this script: the Go modules that pin the versions are
# written into the cache, built there, and the binaries land in
#   ${OODA_K8S_CACHE:-~/.cache/ooda/k8s}/<kubernetes version>/bin/
# A second run finds them there and does nothing.
set -euo pipefail

KUBE_VERSION="${OODA_KUBE_VERSION:-v1.34.3}"
ETCD_VERSION="${OODA_ETCD_VERSION:-v3.6.4}"
KWOK_VERSION="${OODA_KWOK_VERSION:-v0.8.0}"
HELM_VERSION="${OODA_HELM_VERSION:-v4.3.2}"
KUBERAY_VERSION="${OODA_KUBERAY_VERSION:-v1.5.0}"

CACHE="${OODA_K8S_CACHE:-$HOME/.cache/ooda/k8s}/${KUBE_VERSION}"
BIN="$CACHE/bin"
SRC="$CACHE/src"
CRDS="$CACHE/crds"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok helm)

missing=()
for b in "${BINARIES[@]}"; do
  [[ -x "$BIN/$b" ]] || missing+=("$b")
done
[[ -s "$CRDS/ray.io_rayservices.yaml" ]] || missing+=(kuberay-crds)
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "k8s binaries for ${KUBE_VERSION} already in $BIN"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: go is not installed" >&2; exit 2; }
mkdir -p "$BIN" "$SRC"
export CGO_ENABLED=0 GOFLAGS=-mod=mod
LDFLAGS="-s -w"
start=$(date +%s)

want() { [[ " ${missing[*]} " == *" $1 "* ]]; }

if want kube-apiserver || want kube-controller-manager || want kube-scheduler; then
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
  # local paths, which do not apply to a dependency: pin each to the matching v0.x.y.
  staging_version="v0.${KUBE_VERSION#v1.}"
  mkdir -p "$SRC/kube"
  gomod=$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module ooda.local/k8sbuild"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//; s/\([0-9]*\.[0-9]*\).*/\1/')"
    echo
    echo "require k8s.io/kubernetes ${KUBE_VERSION}"
    echo
    echo "replace ("
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"${staging_version}"'#p' "$gomod"
    echo ")"
  } > "$SRC/kube/go.mod"
  version_ldflags="-X k8s.io/component-base/version.gitVersion=${KUBE_VERSION}"
  version_ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
  version_ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)"
  version_ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    want "$b" || continue
    echo "building $b ${KUBE_VERSION}"
    (cd "$SRC/kube" && go build -trimpath -ldflags "$LDFLAGS $version_ldflags" \
      -o "$BIN/$b" "k8s.io/kubernetes/cmd/$b")
  done
fi

if want etcd; then
  echo "building etcd ${ETCD_VERSION}"
  mkdir -p "$SRC/etcd"
  cat > "$SRC/etcd/main.go" <<'GO'
// Command etcd runs the etcd server from the go.etcd.io/etcd/server/v3 module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  printf 'module ooda.local/etcd\n\ngo %s\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$(go env GOVERSION | sed 's/^go//; s/\([0-9]*\.[0-9]*\).*/\1/')" "$ETCD_VERSION" > "$SRC/etcd/go.mod"
  (cd "$SRC/etcd" && go build -trimpath -ldflags "$LDFLAGS" -o "$BIN/etcd" .)
fi

if want kwok; then
  echo "building kwok ${KWOK_VERSION}"
  GOBIN="$BIN" go install -trimpath -ldflags "$LDFLAGS" "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
fi

if want helm; then
  echo "building helm ${HELM_VERSION}"
  GOBIN="$BIN" go install -trimpath \
    -ldflags "$LDFLAGS -X helm.sh/helm/v4/internal/version.version=${HELM_VERSION}" \
    "helm.sh/helm/v4/cmd/helm@${HELM_VERSION}"
fi

if want kuberay-crds; then
  echo "fetching KubeRay ${KUBERAY_VERSION} CRDs"
  dir=$(go mod download -json "github.com/ray-project/kuberay/ray-operator@${KUBERAY_VERSION}" \
    | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  mkdir -p "$CRDS"
  cp "$dir"/config/crd/bases/ray.io_*.yaml "$CRDS/"
  chmod u+w "$CRDS"/*.yaml
fi

echo "$KUBE_VERSION" > "$CACHE/VERSION"
echo "built ${missing[*]} in $(( $(date +%s) - start )) s into $BIN"
