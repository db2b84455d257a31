//! Test helpers for events (feature `testing`): an isolated exchange and
//! queue prefix per test, a TCP proxy that can cut a service off from
//! RabbitMQ, direct access to queues, and what a service wrote to its
//! outbox.

// Test helpers fail loudly.
#![allow(clippy::expect_used, clippy::panic, clippy::missing_panics_doc)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use lapin::{
    options::{BasicGetOptions, BasicPublishOptions},
    types::FieldTable,
};
use sqlx::PgPool;
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use uuid::Uuid;

use super::{
    EventsConfig,
    broker::{Link, header_text, properties},
};

/// The broker every test talks to.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

impl EventsConfig {
    /// A configuration with an exchange and queue prefix of its own, fast
    /// retries, a short poll, and queues that expire after the test.
    pub fn ephemeral() -> Self {
        let tag = Uuid::new_v4().simple().to_string();
        Self {
            amqp_url: AMQP_URL.to_owned(),
            exchange: format!("test.{tag}"),
            queue_prefix: format!("test.{tag}."),
            max_attempts: 3,
            retry_base: Duration::from_millis(50),
            prefetch: 32,
            poll_interval: Duration::from_millis(200),
            ephemeral: Some(Duration::from_mins(10)),
        }
    }

    /// The same exchange and queues, reached through `amqp_url`.
    #[must_use]
    pub fn via(&self, amqp_url: &str) -> Self {
        Self {
            amqp_url: amqp_url.to_owned(),
            ..self.clone()
        }
    }
}

/// Publishes raw bytes on the test exchange (poison messages).
pub async fn publish_raw(config: &EventsConfig, routing_key: &str, body: &[u8]) {
    let link = Link::open(&config.amqp_url, "test-publisher")
        .await
        .expect("broker");
    super::topology::declare_exchanges(&link.channel, config)
        .await
        .expect("exchanges");
    link.channel
        .basic_publish(
            &config.exchange,
            routing_key,
            BasicPublishOptions::default(),
            body,
            properties(Uuid::new_v4(), routing_key, FieldTable::default()),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    link.close().await;
}

/// A dead-lettered message: its body and the reason it was given up on.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The original body.
    pub body: Vec<u8>,
    /// The `x-death-reason` header.
    pub reason: String,
}

/// Takes every message currently in `consumer`'s dead-letter queue.
pub async fn take_dead_letters(config: &EventsConfig, consumer: &str) -> Vec<DeadLetter> {
    let link = Link::open(&config.amqp_url, "test-dlq-reader")
        .await
        .expect("broker");
    let queue = super::topology::dead_letter_queue(&config.queue_name(consumer));
    let mut letters = Vec::new();
    while let Some(message) = link
        .channel
        .basic_get(&queue, BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        letters.push(DeadLetter {
            reason: header_text(
                message.delivery.properties.headers().as_ref(),
                "x-death-reason",
            )
            .unwrap_or_default(),
            body: message.delivery.data.clone(),
        });
    }
    link.close().await;
    letters
}

/// Every event payload in the outbox, oldest first: what a service's
/// transactions announced, whether or not the relay has published it yet.
pub async fn outbox_payloads(pool: &PgPool) -> Vec<serde_json::Value> {
    let payloads: Vec<String> = sqlx::query_scalar("SELECT payload FROM outbox ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("reading the outbox");
    payloads
        .iter()
        .map(|payload| serde_json::from_str(payload).expect("an outbox payload is JSON"))
        .collect()
}

/// A TCP proxy in front of RabbitMQ that a test can cut (dropping every
/// connection and refusing new ones) and restore, so one test can simulate
/// a broker outage while tests beside it keep their broker.
#[derive(Clone)]
pub struct ChaosProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    paused: watch::Sender<bool>,
}

impl ChaosProxy {
    /// Starts a proxy to `127.0.0.1:5672` on a free local port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0_u64);
        let (paused, _) = watch::channel(false);
        let proxy = Self {
            addr,
            up,
            cut,
            paused,
        };
        let accept = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if !accept.up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = accept.cut.subscribe();
                let paused = accept.paused.subscribe();
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect("127.0.0.1:5672").await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_broker, mut to_broker) = upstream.into_split();
                    tokio::select! {
                        _ = forward_unless_paused(&mut from_client, &mut to_broker, paused) => {}
                        _ = tokio::io::copy(&mut from_broker, &mut to_client) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    /// The AMQP URL that goes through this proxy.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// Drops every proxied connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Accepts connections again (and forwards what clients send, if
    /// paused).
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        self.paused.send_replace(false);
    }

    /// Holds back everything clients send from now on while still passing
    /// the broker's traffic to them: a client's acks and publishes seem
    /// sent to it but never arrive, as when a process dies right after
    /// writing them. A later [`Self::cut`] drops what was held.
    pub fn pause(&self) {
        self.paused.send_replace(true);
    }
}

/// Copies client bytes to the broker, holding each read while `paused`.
async fn forward_unless_paused(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
    mut paused: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        let read = from.read(&mut buf).await?;
        if read == 0 {
            return Ok(());
        }
        if paused.wait_for(|paused| !paused).await.is_err() {
            return Ok(());
        }
        to.write_all(&buf[..read]).await?;
    }
}
