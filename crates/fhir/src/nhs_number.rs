//! NHS Number (being written).
