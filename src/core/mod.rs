//! The sans-IO core: state machines over bytes, events and timestamps. Nothing here touches a
//! socket, a clock or a global RNG; time and randomness come in as arguments.

pub mod client;
pub mod transaction;
