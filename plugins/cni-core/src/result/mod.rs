//! Plugin results: the canonical model ([`types`]) and its conversion to and from every version's
//! wire shape ([`convert`]).

pub mod convert;
pub mod types;

pub use types::CniResult;

#[cfg(test)]
mod proptests;
