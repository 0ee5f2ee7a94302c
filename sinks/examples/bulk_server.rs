//! A fast local Elasticsearch bulk endpoint for benchmarks (see `benches/support/bulk_server.rs`):
//! `bulk_server [PORT]` prints `http://127.0.0.1:PORT` and serves until killed;
//! `GET /_bench/stats` says how many items (and message bytes) it has acknowledged.
//! Used by `benches/e2e/run.sh`.

#[path = "../benches/support/bulk_server.rs"]
mod bulk_server;

fn main() {
    let port = match std::env::args().nth(1).map(|p| p.parse::<u16>()) {
        None => 0,
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            eprintln!("bulk_server: PORT: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = bulk_server::serve(port, false) {
        eprintln!("bulk_server: {e}");
        std::process::exit(1);
    }
}
