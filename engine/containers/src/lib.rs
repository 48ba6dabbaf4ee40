//! Container discovery from cgroupfs and the kubelet, and cgroup readers
