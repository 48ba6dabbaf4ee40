//! Loading and validating huatuo-bamai.conf
