//! The huatuo agent: configuration, rule evaluation, sources, storage and the HTTP API.
