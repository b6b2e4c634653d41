//! hashsched operator library.
