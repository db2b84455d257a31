//! storefront (work in progress).
