#!/usr/bin/env bash
# The container images of the end-to-end cluster's real node, built without a daemon and without
# a registry: a Debian root filesystem from debootstrap becomes the base image, the project's own
# Dockerfile builds on it unchanged with buildah, and every image is kept as an OCI archive
# named after the hash of what went into it, under $E2E_IMAGES (outside the repository). The
# node's containerd imports the archives.
#
#   hack/images.sh            build what is missing, then print one line per image:
#                             KEY REFERENCE ARCHIVE
#   hack/images.sh --check    the same, but fail instead of building
#
# KEYs: pause (the pod sandbox), memorygraph (the project's image), memorygraph-next (the same
# with another label: an image change for rollouts), minio (the S3 server for archival), coredns.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
E2E_BIN=${E2E_BIN:-$HOME/.cache/memorygraph/e2e/bin}
TOOLS_DIR=${TOOLS_DIR:-$HOME/.cache/memorygraph/bin}
E2E_IMAGES=${E2E_IMAGES:-$HOME/.cache/memorygraph/e2e/images}
DEBIAN_MIRROR=${E2E_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the base image is made of; its hash names it.
BASE_SUITE=bookworm
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates

# buildah mounts layers while it works, debootstrap mounts /proc in its target: in a mount
# namespace of this script's own, none of it can outlive the script.
if [[ -z ${_IMAGES_PRIVATE_MOUNTS:-} ]]; then
    export _IMAGES_PRIVATE_MOUNTS=1
    exec unshare --mount --propagation private -- bash "$0" "$@"
fi
CHECK_ONLY=${1:-}
# mount(8) (run by debootstrap) would create /run/mount on the machine for its table.
export LIBMOUNT_UTAB=$E2E_IMAGES/mount-utab

log() { echo "images: $*" >&2; }
die() {
    log "$*"
    exit 1
}

buildah() {
    command buildah --root "$E2E_IMAGES/storage" --runroot "$E2E_IMAGES/run" \
        --storage-driver overlay "$@"
}

hash_of() { sha256sum | cut -c1-16; }

# have KEY REF ARCHIVE: the archive exists (touched: archives unused for a while are pruned);
# otherwise fail when only checking.
have() {
    if [[ -f $3 ]]; then
        touch "$3"
        return 0
    fi
    [[ $CHECK_ONLY != --check ]] || die "$1 image $2 is not built (make e2e-build)"
    log "building $1 image $2"
    return 1
}

# in_storage REF ARCHIVE: make REF available to buildah (an earlier build may have been pruned
# from its storage while its archive stayed).
in_storage() {
    buildah inspect --type image "$1" >/dev/null 2>&1 || buildah pull -q "oci-archive:$2" >/dev/null
}

# save REF ARCHIVE: the image as an OCI archive, written under a temporary name first so that a
# half-written archive is never taken for a built one.
save() {
    rm -f "$2.tmp"
    buildah push -q "$1" "oci-archive:$2.tmp:$1" >/dev/null
    mv "$2.tmp" "$2"
}

build_base() {
    local rootfs=$E2E_IMAGES/rootfs.$$
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include="$BASE_PACKAGES" "$BASE_SUITE" "$rootfs" \
        "$DEBIAN_MIRROR" >"$E2E_IMAGES/debootstrap.log" 2>&1 ||
        die "debootstrap failed (log: $E2E_IMAGES/debootstrap.log)"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -cf "$rootfs.tar" .
    rm -rf "$rootfs"
    local c
    c=$(buildah from scratch)
    buildah add -q "$c" "$rootfs.tar" / >/dev/null
    rm -f "$rootfs.tar"
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd python3 "$c"
    buildah commit -q --rm "$c" "$1" >/dev/null
}

# The project's Dockerfile, unchanged, on the base image. pip in the build talks to the package
# index through this machine's TLS setup, so it gets the host's CA bundle (mounted for the build
# only, never part of the image).
build_memorygraph() {
    local pipconf=$E2E_IMAGES/pip.conf
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$pipconf"
    buildah bud -q --isolation chroot --network host --layers=false \
        --build-arg "PYTHON_IMAGE=$2" \
        -v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
        -v "$pipconf:/etc/pip.conf:ro" \
        -t "$1" -f "$ROOT/Dockerfile" "$ROOT" >"$E2E_IMAGES/build.log" 2>&1 ||
        die "building the project image failed (log: $E2E_IMAGES/build.log)"
}

# relabel REF FROM: FROM with one more label, so a different image (its own digest) with the
# same contents.
relabel() {
    local c
    c=$(buildah from -q "$2")
    buildah config --label org.opencontainers.image.revision=next "$c"
    buildah commit -q --rm "$c" "$1" >/dev/null
}

# binary_image REF FROM BINARY NAME: BINARY as /usr/local/bin/NAME on FROM, run as 65532.
binary_image() {
    local c
    c=$(buildah from -q "$2")
    buildah copy -q --chmod 0755 "$c" "$3" "/usr/local/bin/$4" >/dev/null
    # The base's command (python3) goes first: it would become the entrypoint's argument.
    buildah config --cmd '' "$c"
    buildah config --user 65532:65532 --entrypoint "[\"/usr/local/bin/$4\"]" "$c"
    buildah commit -q --rm "$c" "$1" >/dev/null
}

# The pod sandbox: Kubernetes' own pause.c from the k8s.io/kubernetes module, linked statically.
pause_source() {
    local dir
    dir=$(cd "$ROOT/e2e" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' k8s.io/kubernetes)
    echo "$dir/build/pause/linux/pause.c"
}

build_pause() {
    local work=$E2E_IMAGES/pause.$$
    mkdir -p "$work"
    gcc -Os -Wall -Werror -static -DVERSION=e2e -o "$work/pause" "$2"
    local c
    c=$(buildah from scratch)
    buildah copy -q --chmod 0755 "$c" "$work/pause" /pause >/dev/null
    buildah config --user 65535:65535 --entrypoint '["/pause"]' "$c"
    buildah commit -q --rm "$c" "$1" >/dev/null
    rm -rf "$work"
}

main() {
    local b needed=(git go gcc)
    [[ $CHECK_ONLY == --check ]] || needed+=(buildah debootstrap)
    for b in "${needed[@]}"; do
        command -v "$b" >/dev/null || die "$b is needed for the images (make e2e-build)"
    done
    mkdir -p "$E2E_IMAGES"
    exec 9>"$E2E_IMAGES/lock"
    flock 9

    local base_hash base base_archive recipe
    base_hash=$(echo "minbase $BASE_SUITE $BASE_PACKAGES" | hash_of)
    # How the other images are made is part of what they are made of.
    recipe=$(hash_of <"$0")
    base=localhost/memorygraph-e2e/base:$base_hash
    base_archive=$E2E_IMAGES/base-$base_hash.tar
    have base "$base" "$base_archive" || {
        build_base "$base"
        save "$base" "$base_archive"
    }

    # Everything the Dockerfile copies, as the working tree has it (changes not yet committed
    # included), and the base it builds on.
    local src_hash mg mg_archive next next_archive
    src_hash=$(
        cd "$ROOT"
        {
            echo "$base_hash $recipe"
            git ls-files -co --exclude-standard -- Dockerfile pyproject.toml README.md \
                dataplane operator | sort | xargs sha256sum
        } | hash_of
    )
    mg=localhost/memorygraph:$src_hash
    mg_archive=$E2E_IMAGES/memorygraph-$src_hash.tar
    if ! have memorygraph "$mg" "$mg_archive"; then
        in_storage "$base" "$base_archive"
        build_memorygraph "$mg" "$base"
        save "$mg" "$mg_archive"
    fi
    next=localhost/memorygraph:$src_hash-next
    next_archive=$E2E_IMAGES/memorygraph-$src_hash-next.tar
    if ! have memorygraph-next "$next" "$next_archive"; then
        in_storage "$mg" "$mg_archive"
        relabel "$next" "$mg"
        save "$next" "$next_archive"
    fi

    local key binary ref archive
    declare -A refs archives
    for key in minio coredns; do
        binary=$TOOLS_DIR/minio
        [[ $key == coredns ]] && binary=$E2E_BIN/coredns
        [[ -x $binary ]] || die "$binary is not built (make e2e-build)"
        ref=localhost/memorygraph-e2e/$key:$({
            echo "$base_hash $recipe"
            sha256sum <"$binary"
        } | hash_of)
        archive=$E2E_IMAGES/$key-${ref##*:}.tar
        if ! have "$key" "$ref" "$archive"; then
            in_storage "$base" "$base_archive"
            binary_image "$ref" "$base" "$binary" "$key"
            save "$ref" "$archive"
        fi
        refs[$key]=$ref
        archives[$key]=$archive
    done

    local pause_c pause pause_archive
    pause_c=$(pause_source)
    pause=localhost/memorygraph-e2e/pause:$({
        echo "$recipe"
        sha256sum <"$pause_c"
        gcc --version | head -1
    } | hash_of)
    pause_archive=$E2E_IMAGES/pause-${pause##*:}.tar
    have pause "$pause" "$pause_archive" || {
        build_pause "$pause" "$pause_c"
        save "$pause" "$pause_archive"
    }

    # The archives are the cache; buildah keeps only the base, which the next build starts
    # from. Every change of the sources makes a new project image: archives no run has used
    # for a day go.
    if [[ $CHECK_ONLY != --check ]]; then
        local id name
        buildah images --format '{{.ID}} {{.Name}}:{{.Tag}}' | while read -r id name; do
            [[ $name == "$base" ]] || buildah rmi -f "$id" >/dev/null || log "could not remove $name"
        done
        find "$E2E_IMAGES" -maxdepth 1 -name '*.tar' -mmin +1440 -delete
    fi

    echo "pause $pause $pause_archive"
    echo "memorygraph $mg $mg_archive"
    echo "memorygraph-next $next $next_archive"
    for key in minio coredns; do
        echo "$key ${refs[$key]} ${archives[$key]}"
    done
}

main
