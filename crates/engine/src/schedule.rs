//! Block scheduling (being written).
