//! An upgrade that fails after the 101 reaches `Handler::upgrade_failed`
//! with the socket's data, and no other handler method runs for it.

mod common;

use common::*;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use wshub::{Error, Handler, WebSocket};

/// What the handler saw.
#[derive(Debug)]
enum Seen {
    Opened(u32),
    Failed(u32, String),
}

struct Watch(mpsc::UnboundedSender<Seen>);

impl Handler for Watch {
    type Data = u32;

    async fn open(&self, ws: &WebSocket<u32>) {
        let _ = self.0.send(Seen::Opened(*ws.data()));
    }

    async fn upgrade_failed(&self, data: u32, error: Error) {
        assert!(matches!(error, Error::Upgrade(_)), "{error:?}");
        let _ = self.0.send(Seen::Failed(data, error.to_string()));
    }
}

/// The handler over hyper's HTTP/1 (`serve_hyper_with`), with or without
/// upgrade support, accepting every socket with the data 7.
async fn server(upgrades: bool) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (serve_hyper_with(Watch(tx), 7, upgrades).await, rx)
}

async fn handshake(addr: std::net::SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &HttpRequest::upgrade("/").to_bytes())
        .await
        .unwrap();
    let response = read_response(&mut tcp, &mut bytes::BytesMut::new()).await;
    assert_eq!(response.status, 101);
    tcp
}

#[tokio::test]
async fn a_connection_hyper_never_hands_over_reaches_upgrade_failed_with_its_data() {
    within(WAIT, async {
        let (addr, mut seen) = server(false).await;
        let _tcp = handshake(addr).await;
        match wait("upgrade_failed", seen.recv()).await {
            Some(Seen::Failed(data, error)) => {
                assert_eq!(data, 7);
                assert!(
                    error.starts_with("the upgrade failed after the 101"),
                    "{error}"
                );
            }
            other => panic!("expected upgrade_failed, got {other:?}"),
        }
        // Nothing else ran for it.
        assert!(seen.try_recv().is_err());
    })
    .await;
}

/// The same server with upgrade support opens the socket instead.
#[tokio::test]
async fn with_upgrade_support_the_socket_opens_and_nothing_fails() {
    within(WAIT, async {
        let (addr, mut seen) = server(true).await;
        let _tcp = handshake(addr).await;
        match wait("open", seen.recv()).await {
            Some(Seen::Opened(7)) => {}
            other => panic!("expected open, got {other:?}"),
        }
    })
    .await;
}
