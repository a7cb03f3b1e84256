//! The physical limit for the read benchmark (`benches/load.sh`): axum answering every GET with
//! the same bytes from memory, with the headers a FHIR read carries.
//!
//! Usage: `static_server ADDR FILE`

use axum::Router;
use axum::http::header;
use axum::routing::get;
use bytes::Bytes;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(file)) = (args.next(), args.next()) else {
        eprintln!("usage: static_server ADDR FILE");
        std::process::exit(2);
    };
    let body = Bytes::from(std::fs::read(file)?);
    let app = Router::new().fallback(get(move || {
        let body = body.clone();
        async move {
            (
                [
                    (header::CONTENT_TYPE, "application/fhir+json; charset=utf-8"),
                    (header::ETAG, "W/\"1\""),
                ],
                body,
            )
        }
    }));
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}
