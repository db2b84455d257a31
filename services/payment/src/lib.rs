//! payment-service (work in progress).
