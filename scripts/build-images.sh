#!/usr/bin/env bash
# Build the Debian base images molecule uses (no registry serves images here),
# and make the build caches the scenarios share.
# Each image is a debootstrap'ed rootfs with python3 and systemd, imported into
# podman as localhost/quant-<suite>. Existing images are reused unless --force.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/molecule/containers.conf}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
force=0
suites=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    *) suites+=("$arg") ;;
  esac
done
[ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie)

build() {
  local suite="$1" image="localhost/quant-$1"
  if [ "$force" = 0 ] && podman image exists "$image"; then
    echo "image $image: cached"
    return
  fi
  local rootfs
  rootfs="$(mktemp -d "/var/tmp/quant-rootfs-$suite.XXXXXX")"
  trap 'rm -rf "$rootfs"' RETURN
  echo "image $image: debootstrap $suite (about a minute)"
  debootstrap --variant=minbase \
    --include=python3,python3-apt,systemd,systemd-sysv,dbus,sudo,ca-certificates,locales,procps,iproute2 \
    "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log"; exit 1; }
  rm -f "$rootfs.log"
  # A generated locale keeps initdb and the roles' UTF8 databases deterministic.
  echo "en_US.UTF-8 UTF-8" >"$rootfs/etc/locale.gen"
  chroot "$rootfs" locale-gen >/dev/null
  # Nothing in the container may try to talk to a console or sync hardware clocks.
  rm -f "$rootfs"/etc/systemd/system/*.wants/getty* 2>/dev/null || true
  tar -C "$rootfs" -c . | podman import \
    --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' - "$image" >/dev/null
  echo "image $image: built"
}

# localhost/quant-<suite>-build: the same system plus what the timescaledb role
# installs before a source build (compilers, cmake, PostgreSQL's server
# headers), so scenarios that are not about installation (replica, community)
# skip those minutes in every container. site still starts from the bare image.
build_tools() {
  local suite="$1" image="localhost/quant-$1-build" pg="$2"
  if [ "$force" = 0 ] && podman image exists "$image"; then
    echo "image $image: cached"
    return
  fi
  local name="quant-image-build-$suite"
  podman rm -f "$name" >/dev/null 2>&1 || true
  echo "image $image: build tools and postgresql-server-dev-$pg (about a minute)"
  # The same list as the platform plan's build_packages + pg_dev_packages
  # (module_utils/platform_plan/matrix.py), installed the way the role's apt
  # task does (with recommends).
  podman run --name "$name" "localhost/quant-$suite" sh -c "
    apt-get -q update >/dev/null &&
    DEBIAN_FRONTEND=noninteractive apt-get -q -y install \
      cmake gcc make libssl-dev tar xz-utils gzip ca-certificates postgresql-server-dev-$pg >/dev/null &&
    apt-get clean" || { podman rm -f "$name" >/dev/null; exit 1; }
  podman commit --quiet --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' "$name" "$image" >/dev/null
  podman rm "$name" >/dev/null
  echo "image $image: built"
}

for s in "${suites[@]}"; do build "$s"; done
case " ${suites[*]} " in *" bookworm "*) build_tools bookworm 15 ;; esac

# Build caches the scenarios mount (molecule/site, community and replica:
# TimescaleDB's build tree, one per container), kept between runs so a
# scenario compiles only once per machine.
mkdir -p /var/cache/quant-molecule/timescaledb-community /var/cache/quant-molecule/timescaledb-site \
  /var/cache/quant-molecule/timescaledb-replica-primary /var/cache/quant-molecule/timescaledb-replica-standby
