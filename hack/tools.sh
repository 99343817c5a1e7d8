#!/usr/bin/env bash
# Builds the command-line tools the tests need from Go modules (never prebuilt binaries)
# into $TOOLS_DIR, outside the repository, and reuses them on later runs.
set -euo pipefail
TOOLS_DIR=${TOOLS_DIR:-$HOME/.cache/memorygraph/bin}
mkdir -p "$TOOLS_DIR"

# go_tool NAME PACKAGE VERSION: build PACKAGE@VERSION into TOOLS_DIR unless that exact module
# version is already there (`go version -m` reads the module version the binary was built from).
go_tool() {
    local name=$1 package=$2 version=$3
    if [[ -x "$TOOLS_DIR/$name" ]] \
        && go version -m "$TOOLS_DIR/$name" 2>/dev/null | awk '$1 == "mod" {print $3}' | grep -qx "$version"; then
        return 0
    fi
    echo "building $name $version into $TOOLS_DIR" >&2
    GOBIN="$TOOLS_DIR" GOFLAGS=-mod=mod go install "$package@$version"
}

# helm: `helm lint` / `helm template` check the operator chart (tests/operator/test_chart.py).
go_tool helm helm.sh/helm/v3/cmd/helm "${HELM_VERSION:-v3.22.0}"

# minio: the S3-compatible server the archival tests ship archives to (tests/dataplane/
# test_archive_s3.py). MinIO publishes no semantic-version tags, so this is a pseudo-version.
go_tool minio github.com/minio/minio "${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
