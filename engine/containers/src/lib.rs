//! Container discovery from cgroupfs and the kubelet, and cgroup readers.

pub mod cgroupfs;
pub mod classify;
pub mod container;
pub mod discovery;
pub mod docker;
pub mod kubelet;
pub mod readers;

pub use classify::{classify, QosClass, Runtime};
pub use container::{container_labels, CgroupIds, Container, ContainerType, PodInfo};
pub use discovery::{Discovery, DiscoveryError, DiscoveryOptions, DiscoveryStats, Snapshot};
pub use readers::{cgroup_readers, cgroup_readers_with, schemas, ReaderOptions};
