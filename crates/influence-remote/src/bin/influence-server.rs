//! Serves Burn's flex CPU backend over WebSocket for `influence-remote` clients.
//!
//! ```text
//! influence-server [--port 3000]
//! ```
//!
//! On a GPU machine, a server of Burn's wgpu or CUDA backend is the same two lines with that
//! backend (`burn::server::start_websocket::<burn::backend::Cuda>(Default::default(), port)`).

fn main() {
    let mut port: u16 = 3000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--port" => {
                port = match args.next().and_then(|p| p.parse().ok()) {
                    Some(p) => p,
                    None => {
                        eprintln!("error: --port needs a port number");
                        std::process::exit(2);
                    }
                }
            }
            "-h" | "--help" => {
                println!(
                    "influence-server [--port PORT]: serves Burn's flex backend over WebSocket (default port 3000)"
                );
                return;
            }
            other => {
                eprintln!(
                    "error: unknown argument {other:?}; usage: influence-server [--port PORT]"
                );
                std::process::exit(2);
            }
        }
    }
    eprintln!("influence-server: serving flex on ws://0.0.0.0:{port}");
    influence_remote::serve(port);
}
