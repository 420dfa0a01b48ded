//! One integration-test crate: the built binary, driven over stdio, against a loopback portal.

mod portal;
mod util;

mod approval;
mod cli;
mod confirm;
mod contract;
mod errors;
mod forwarding;
mod hardening;
mod http;
mod ledger;
mod lifecycle;
mod limits;
mod read_only;
mod readme;
mod resolve;
mod rest_v3;
mod robustness;
mod secrets;
mod shared_state;
mod startup;
mod team;
mod toolkit;
mod tools_meta;
mod who_can;
