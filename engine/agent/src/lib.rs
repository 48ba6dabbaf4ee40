//! The huatuo agent binary: CLI, daemon, storage and HTTP API
