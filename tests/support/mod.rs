//! Shared helpers for the end-to-end tests (spawning hubs, simulated miners and pools on 127.0.0.1).
