//! product-service (work in progress).
