//! Mutation corpus generator (being written).
