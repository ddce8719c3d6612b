//! onair's load generator as a library: the clients the `onair-loadtest`
//! binary runs by the hundred (WHEP and LL-HLS viewers, chat clients, plain
//! Icecast listeners; RTMP, WHIP and Icecast publishers), which the tests also use singly, and the
//! scenarios behind each subcommand ([`cli::run`]).

pub mod chat;
pub mod clear;
pub mod cli;
pub mod decode;
pub mod flv;
pub mod hls;
pub mod http;
pub mod icecast;
pub mod pattern;
pub mod report;
pub mod rtmp;
pub mod rtmp_raw;
pub mod scenario;
pub mod soak;
pub mod stamp;
pub mod turn_raw;
pub mod whep;
pub mod whip;
