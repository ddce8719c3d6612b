//! `onair-loadtest`: drives an onair server on loopback with real peers and
//! reports what viewers saw and what the server spent. Every run is bounded
//! in count and time and stops by itself. See `onair-loadtest --help`.

#[tokio::main]
async fn main() {
    match onair_loadtest::cli::run(std::env::args_os().skip(1)).await {
        Ok(_) => {}
        Err(e) => {
            // clap's own errors (and --help) print themselves.
            if let Some(c) = e.downcast_ref::<clap::Error>() {
                c.exit();
            }
            eprintln!("onair-loadtest: {e:#}");
            std::process::exit(1);
        }
    }
}
