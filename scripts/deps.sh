#!/usr/bin/env bash
# Installs what building huatuo needs on a fresh Debian 12 machine: clang and llvm compile
# the eBPF templates, libbpf-dev provides bpf_helpers.h, bpftool regenerates vmlinux.h,
# prometheus provides promtool (engine/agent/tests/promtool.rs lints the /metrics output),
# iproute2, util-linux and nftables the ip, losetup, unshare, setpriv, flock and nft the kernel
# tests run; systemd (systemd-analyze) and docker-compose check the deploy files
# (engine/agent/tests/deploy_files.rs; Debian has no kubectl package: the kustomize base is
# rendered with kubectl only where it is installed).
set -euo pipefail
missing=()
for pkg in clang llvm libbpf-dev bpftool prometheus iproute2 util-linux nftables systemd docker-compose; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "huatuo needs: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
fi
