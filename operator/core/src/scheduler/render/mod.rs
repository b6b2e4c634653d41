//! Rendering decisions into what the hub and Kubernetes consume: the hub routing document and the
//! objects that run a StratumHub. Pure functions: same inputs, byte-identical output.

pub mod kubernetes;
pub mod routing;
