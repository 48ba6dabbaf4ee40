//! Host readers: procfs, sysfs, netlink and statfs sources
