//! One task per connection on each side (docs/semantics.md §10): a `TcpClient` drives its
//! connection itself (no ConnectedSocketAdapter component beside it), and `TcpServer`
//! runs each connection's adapter and protocol as one group and watches the connection from its
//! own task. Counted with tokio's count of live tasks, which the three tasks a side that a
//! connection used to cost would triple. Its own binary: it counts every task of its runtime.

use std::time::Duration;

use axon::{link_refs, Component, Inbox, Outbox, Scheduler};
use bytes::Bytes;
use kamaelia::internet::{EchoProtocol, TcpServer};
use kamaelia::TcpClient;
use kamaelia_test::with_timeout;

const CONNECTIONS: usize = 40;
const HELLO: &[u8] = b"hello\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_side_of_a_held_connection_is_one_task() {
    with_timeout(Duration::from_secs(60), async {
        let metrics = tokio::runtime::Handle::current().metrics();
        let server = TcpServer::bind("127.0.0.1:0", |_| EchoProtocol::new()).unwrap();
        let addr = server.local_addr();
        let sched = Scheduler::new();
        let s = sched.clone();
        tokio::spawn(async move {
            s.run(async {
                server.activate();
            })
            .await
        });
        // The server's own task (and the test's) before any connection.
        sched.wait_live(1).await;
        let before = metrics.num_alive_tasks();

        // Each client is fed and read from here, through standalone boxes: a client activated
        // alone is one task.
        let mut clients = Vec::new();
        let mut ends = Vec::new();
        for _ in 0..CONNECTIONS {
            let client: Component = TcpClient::new("127.0.0.1", addr.port()).into();
            let feed = Outbox::<Bytes>::standalone("feed");
            let echo = Inbox::<Bytes>::standalone("echo", 8);
            link_refs(&feed.boxref(), &client.boxref("inbox").unwrap()).unwrap();
            link_refs(&client.boxref("outbox").unwrap(), &echo.boxref()).unwrap();
            feed.send(Bytes::from_static(HELLO)).await.unwrap();
            clients.push(client);
            ends.push((feed, echo));
        }
        // One more task: the `Scheduler::run` the clients are started from.
        let s = sched.clone();
        tokio::spawn(async move {
            s.run(async {
                for c in clients {
                    c.activate();
                }
            })
            .await
        });
        for (_, echo) in &ends {
            let mut got = 0;
            while got < HELLO.len() {
                got += echo.recv().await.len();
            }
        }
        // Every connection is up: the client, the server's CSA and protocol, three components
        // each.
        sched.wait_live(1 + 3 * CONNECTIONS).await;
        // Connecting ran in short-lived tasks: give them a few seconds to be gone (tokio has no
        // event for a task count, so this looks every 20 ms).
        let want = 2 * CONNECTIONS + 1;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut tasks = metrics.num_alive_tasks() - before;
        while tasks > want && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tasks = metrics.num_alive_tasks() - before;
        }
        // One group a side per connection: 2 tasks a connection, where a task per component
        // makes 4 (and the old supervisor task per server connection 5). On a loaded machine a
        // task or two not ours has been seen to linger, so that much slack is allowed.
        assert!(
            tasks <= want + 2,
            "{tasks} tasks for {CONNECTIONS} held connections, want {want}"
        );
    })
    .await;
}
