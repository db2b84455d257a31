//! order-service (work in progress).
