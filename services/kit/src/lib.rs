//! storekeeper-kit (work in progress).
