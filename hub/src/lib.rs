//! hashsched stratum hub library.
