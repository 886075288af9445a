//! Host integration tests (landing).
