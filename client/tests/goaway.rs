//! A broker that shuts down says so with an HTTP/2 GOAWAY (NO_ERROR);
//! the requests it refused must count as retriable, or every graceful
//! restart fails some writes (seen in the rolling-restart fault test).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::time::Duration;

use strata_client::ClientError;
use strata_protocol::v1::{strata_client::StrataClient, ListTopicsRequest};

/// One request against a raw HTTP/2 server that refuses every stream with
/// GOAWAY(reason); returns what the client makes of it.
async fn refused_with(reason: h2::Reason) -> ClientError {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut conn = h2::server::handshake(socket).await.unwrap();
        // Refuse before any stream is processed: last stream id 0.
        conn.abrupt_shutdown(reason);
        while let Some(Ok(_)) = conn.accept().await {}
    });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        StrataClient::new(channel).list_topics(ListTopicsRequest::default()),
    )
    .await
    .expect("the refused request is answered")
    .expect_err("a refused stream fails");
    server.abort();
    ClientError::from(status)
}

#[tokio::test]
async fn a_graceful_goaway_is_retriable() {
    let err = refused_with(h2::Reason::NO_ERROR).await;
    assert!(err.is_retriable(), "{err}");
}

#[tokio::test]
async fn a_goaway_for_a_protocol_error_is_not() {
    let err = refused_with(h2::Reason::PROTOCOL_ERROR).await;
    assert!(!err.is_retriable(), "{err}");
}
