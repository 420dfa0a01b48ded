//! One integration-test crate: the built binary, driven over stdio, against a loopback portal.

mod portal;
mod util;

mod errors;
mod forwarding;
mod lifecycle;
mod read_only;
mod readme;
mod secrets;
mod startup;
mod tools_meta;
