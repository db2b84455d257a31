//! user-service (work in progress).
