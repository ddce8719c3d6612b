//! onair's load generator as a library: the WHEP viewer and HTTP client the
//! `onair-loadtest` binary runs by the hundred, and the tests use singly.

pub mod http;
pub mod whep;
pub mod whip;
