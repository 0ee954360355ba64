#![allow(clippy::unwrap_used, clippy::expect_used)] // a test: a panic is the failure report

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::generate::Authority;
use crate::{identity, ClientTls, ServerTls, TlsFiles, TlsIncoming};

struct Setup {
    _dir: tempfile::TempDir,
    ca: Authority,
    server: TlsFiles,
    client: TlsFiles,
    dir: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new("test CA").unwrap();
    let server = ca.write(dir.path(), "node-1", &["strata-node-1", "localhost"]).unwrap();
    let client = ca.write(dir.path(), "node-2", &["strata-node-2"]).unwrap();
    let path = dir.path().to_path_buf();
    Setup { _dir: dir, ca, server, client, dir: path }
}

/// A TLS echo server: every connection's peer identity goes to the
/// returned channel, then one line is echoed.
async fn echo(tls: std::sync::Arc<ServerTls>) -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<Option<u64>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut incoming = TlsIncoming::spawn(listener, tls, "test", CancellationToken::new());
    tokio::spawn(async move {
        while let Some(Ok(mut conn)) = incoming.next().await {
            let node = conn.info().certificates.as_ref().and_then(|c| identity::node_id(&c[0]));
            let _ = tx.send(node).await;
            tokio::spawn(async move {
                let mut buf = [0u8; 5];
                if conn.read_exact(&mut buf).await.is_ok() {
                    let _ = conn.write_all(&buf).await;
                }
            });
        }
    });
    (addr, rx)
}

async fn hello(client: &ClientTls, addr: std::net::SocketAddr) -> std::io::Result<Vec<String>> {
    let tcp = TcpStream::connect(addr).await?;
    let mut s = client.connect("127.0.0.1", tcp).await?;
    s.write_all(b"hello").await?;
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).await?;
    assert_eq!(&buf, b"hello");
    let leaf = s.get_ref().1.peer_certificates().unwrap()[0].clone();
    Ok(identity::names(&leaf))
}

#[tokio::test]
async fn mutual_tls_hands_the_client_certificate_to_the_server() {
    let s = setup();
    let (addr, mut seen) = echo(ServerTls::new(&s.server, &[]).unwrap()).await;
    let names = hello(&ClientTls::new(&s.client, &[]).unwrap(), addr).await.unwrap();
    assert!(names.contains(&"strata-node-1".to_string()), "{names:?}");
    assert_eq!(seen.recv().await.unwrap(), Some(2), "the server sees which node connected");
    // A client without a certificate still connects (it authenticates
    // some other way); the server sees no identity.
    let anonymous = TlsFiles { ca: s.client.ca.clone(), ..TlsFiles::default() };
    hello(&ClientTls::new(&anonymous, &[]).unwrap(), addr).await.unwrap();
    assert_eq!(seen.recv().await.unwrap(), None);
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused_and_so_is_its_certificate() {
    let s = setup();
    let (addr, _seen) = echo(ServerTls::new(&s.server, &[]).unwrap()).await;
    let other = Authority::new("other CA").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let stranger = other.write(dir.path(), "stranger", &["strata-node-9"]).unwrap();
    let err = hello(&ClientTls::new(&stranger, &[]).unwrap(), addr).await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "the server's certificate is not trusted: {err}");
    // Trusting our CA but presenting a certificate from another one.
    let mixed = TlsFiles { ca: s.server.ca.clone(), ..stranger };
    assert!(hello(&ClientTls::new(&mixed, &[]).unwrap(), addr).await.is_err(), "a foreign client certificate");
}

#[tokio::test]
async fn plaintext_and_stalled_clients_do_not_wedge_the_listener() {
    let s = setup();
    let (addr, _seen) = echo(ServerTls::new(&s.server, &[]).unwrap()).await;
    // A Kafka request in plaintext: the handshake fails and the socket closes.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain.write_all(&[0, 0, 0, 10, 0, 18, 0, 3, 0, 0, 0, 1, 0, 0]).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), plain.read(&mut buf)).await.expect("closed promptly");
    assert!(n.is_ok(), "read ends (EOF, an alert or a reset)");
    // Ten clients that connect and say nothing.
    let mut silent = Vec::new();
    for _ in 0..10 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let client = ClientTls::new(&s.client, &[]).unwrap();
    tokio::time::timeout(Duration::from_secs(5), hello(&client, addr)).await.expect("served at once").unwrap();
}

#[tokio::test]
async fn replaced_files_are_served_to_new_connections() {
    let s = setup();
    let tls = ServerTls::new(&s.server, &[]).unwrap();
    let (addr, _seen) = echo(tls.clone()).await;
    let client = ClientTls::new(&s.client, &[]).unwrap();
    assert!(hello(&client, addr).await.unwrap().contains(&"strata-node-1".to_string()));
    assert!(!tls.reload_if_changed().unwrap(), "nothing changed");
    // cert-manager renews: same paths, a new certificate.
    let renewed = s.ca.write(&s.dir, "node-1", &["strata-node-1-renewed", "localhost"]).unwrap();
    assert_eq!(renewed, s.server);
    assert!(tls.reload_if_changed().unwrap());
    assert!(hello(&client, addr).await.unwrap().contains(&"strata-node-1-renewed".to_string()));
    // A broken file keeps the previous certificate in use.
    std::fs::write(s.server.cert.as_ref().unwrap(), "not a certificate").unwrap();
    assert!(tls.reload_if_changed().is_err());
    assert!(hello(&client, addr).await.unwrap().contains(&"strata-node-1-renewed".to_string()));
}

/// The server picks AES-128-GCM even for a client that lists AES-256-GCM
/// first (rustls' and OpenSSL's default order): 10 AES rounds per block
/// instead of 14 on every byte a broker sends.
#[test]
fn the_server_chooses_aes_128_gcm_over_the_clients_preference() {
    let s = setup();
    let server = ServerTls::new(&s.server, &[]).unwrap();
    // A stock rustls client: AES-256-GCM first.
    let stock = rustls::crypto::aws_lc_rs::default_provider();
    assert_eq!(stock.cipher_suites[0].suite(), rustls::CipherSuite::TLS13_AES_256_GCM_SHA384, "the premise");
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile_certs(s.server.ca.as_ref().unwrap()) {
        roots.add(c).unwrap();
    }
    let client_config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(stock))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(std::sync::Arc::new(client_config), name).unwrap();
    let mut srv = rustls::ServerConnection::new(server.config()).unwrap();
    // Pump the handshake in memory.
    for _ in 0..10 {
        let mut buf = Vec::new();
        client.write_tls(&mut buf).unwrap();
        srv.read_tls(&mut buf.as_slice()).unwrap();
        srv.process_new_packets().unwrap();
        let mut back = Vec::new();
        srv.write_tls(&mut back).unwrap();
        client.read_tls(&mut back.as_slice()).unwrap();
        client.process_new_packets().unwrap();
        if !client.is_handshaking() && !srv.is_handshaking() {
            break;
        }
    }
    let suite = client.negotiated_cipher_suite().map(|s| s.suite());
    assert_eq!(suite, Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
}

fn rustls_pemfile_certs(path: &std::path::Path) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    crate::files::certificates("CA", path).unwrap()
}
