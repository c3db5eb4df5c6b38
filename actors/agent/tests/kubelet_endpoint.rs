//! The node's kubelet endpoint over real QUIC with certificates of one cluster CA: a master
//! reads a log and runs a command; the wrong node, a node's own certificate and a refusal
//! of the kubelet each end as they should.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use futures::StreamExt;
use navarch_agent::streams::{self, Execer, KubeletService, LogLocator, LogTarget, StreamError};
use navarch_client::kubelet::{self, ExecInput, ExecItem, ExecRequest, LogsItem, LogsRequest};
use navarch_net::pki::{ClusterCa, ExpectedPeer, ORG_NODES};
use navarch_net::{Endpoint, NetConfig, RpcError};
use navarch_runtime::logs::{LogWriter, Stream};
use navarch_runtime::{ExecChunk, ExecIo};

struct Fixed {
    log: std::path::PathBuf,
}

impl LogLocator for Fixed {
    fn locate(
        &self,
        _namespace: &str,
        pod: &str,
        container: Option<&str>,
        _previous: bool,
    ) -> Result<LogTarget, StreamError> {
        if pod == "waiting" {
            return Err(StreamError::waiting(
                container.unwrap_or("main"),
                pod,
                Some("ContainerCreating"),
            ));
        }
        Ok(LogTarget {
            path: self.log.clone(),
            running: Arc::new(|| false),
        })
    }
}

/// Echoes its command, then its stdin as it comes (on stderr), and a resize; exit code 4
/// once stdin is closed.
struct Echo;

impl Execer for Echo {
    fn exec(
        &self,
        _namespace: &str,
        _pod: &str,
        _container: Option<&str>,
        command: Vec<String>,
        io: ExecIo,
    ) -> BoxFuture<'static, Result<i32, StreamError>> {
        use navarch_runtime::ExecInput as In;
        let ExecIo {
            mut input, output, ..
        } = io;
        Box::pin(async move {
            let _ = output
                .send(ExecChunk::Stdout(command.join(" ").into_bytes()))
                .await;
            while let Some(i) = input.recv().await {
                let said = match i {
                    In::Stdin(b) => b,
                    In::Resize { width, height } => format!("{width}x{height}").into_bytes(),
                    In::CloseStdin => break,
                };
                let _ = output.send(ExecChunk::Stderr(said)).await;
            }
            Ok(4)
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masters_read_logs_and_exec_others_are_refused() {
    navarch_net::install_default_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let (ca, _) = ClusterCa::load_or_create(&dir.path().join("ca")).unwrap();
    let log = dir.path().join("0.log");
    let mut w = LogWriter::open(&log, 1 << 20, 2).unwrap();
    w.record(Stream::Stdout, false, b"hello", SystemTime::now())
        .unwrap();
    let hour = Duration::from_secs(3600);
    let node = streams::serve(
        "127.0.0.1:0".parse().unwrap(),
        "n1",
        ca.issue_kubelet_serving("n1", hour).unwrap(),
        KubeletService::new(Arc::new(Fixed { log }), Arc::new(Echo)),
    )
    .unwrap();
    let addr = node.local_addr().unwrap();

    let master =
        Endpoint::client(NetConfig::new("m1", ca.issue_member("m1", hour).unwrap())).unwrap();
    let to_n1 = master.peer("n1", addr, ExpectedPeer::Node("n1".into()));
    let req = LogsRequest {
        namespace: "default".into(),
        pod: "p".into(),
        ..Default::default()
    };
    let items: Vec<LogsItem> = to_n1
        .stream::<_, LogsItem>(kubelet::LOGS, &req)
        .await
        .unwrap()
        .map(|i| i.unwrap())
        .collect()
        .await;
    assert_eq!(
        items,
        vec![LogsItem::Ready, LogsItem::Chunk(b"hello\n".to_vec())]
    );

    // A refusal of the kubelet is the stream's first item, in Kubernetes' words.
    let waiting = LogsRequest {
        pod: "waiting".into(),
        ..req.clone()
    };
    let mut items = to_n1
        .stream::<_, LogsItem>(kubelet::LOGS, &waiting)
        .await
        .unwrap();
    match items.next().await {
        Some(Ok(LogsItem::Failed(e))) => {
            assert_eq!(e.code, 400);
            assert_eq!(
                e.message,
                "container \"main\" in pod \"waiting\" is waiting to start: ContainerCreating"
            );
        }
        other => panic!("{other:?}"),
    }

    let exec = ExecRequest {
        namespace: "default".into(),
        pod: "p".into(),
        command: vec!["echo".into(), "hi".into()],
        stdin: true,
        ..Default::default()
    };
    // The input goes over as it comes: each piece is answered before the next is sent.
    let (in_tx, in_rx) = tokio::sync::mpsc::channel::<ExecInput>(4);
    let input = futures::stream::unfold(
        in_rx,
        |mut rx| async move { rx.recv().await.map(|i| (i, rx)) },
    );
    let mut items = to_n1
        .duplex::<_, _, ExecItem>(kubelet::EXEC, &exec, input.boxed())
        .await
        .unwrap()
        .map(|i| i.unwrap());
    assert_eq!(items.next().await, Some(ExecItem::Ready));
    assert_eq!(
        items.next().await,
        Some(ExecItem::Stdout(b"echo hi".to_vec()))
    );
    in_tx.send(ExecInput::Stdin(b"in".to_vec())).await.unwrap();
    assert_eq!(items.next().await, Some(ExecItem::Stderr(b"in".to_vec())));
    in_tx
        .send(ExecInput::Resize {
            width: 80,
            height: 24,
        })
        .await
        .unwrap();
    assert_eq!(
        items.next().await,
        Some(ExecItem::Stderr(b"80x24".to_vec()))
    );
    in_tx.send(ExecInput::CloseStdin).await.unwrap();
    assert_eq!(items.next().await, Some(ExecItem::Exit(4)));
    assert_eq!(items.next().await, None);
    // An exec opened as a plain server stream is refused: it takes input.
    let err = to_n1
        .stream::<_, ExecItem>(kubelet::EXEC, &exec)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, RpcError::Unsupported(_)), "{err:?}");

    // Dialing n1's address expecting n2: nothing is sent.
    let wrong = master.peer("n2", addr, ExpectedPeer::Node("n2".into()));
    let err = wrong
        .stream::<_, LogsItem>(kubelet::LOGS, &req)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, RpcError::WrongPeer(_)), "{err:?}");

    // Another node's (client) certificate may not read n1's logs.
    let other = ca
        .issue_client("system:node:n2", &[ORG_NODES], hour)
        .unwrap();
    let n2 = Endpoint::client(NetConfig::new("n2", other)).unwrap();
    let err = n2
        .peer("n1", addr, ExpectedPeer::Node("n1".into()))
        .stream::<_, LogsItem>(kubelet::LOGS, &req)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, RpcError::Refused(m) if m.contains("masters only")),
        "{err:?}"
    );
    node.close();
    master.close();
    n2.close();
}
