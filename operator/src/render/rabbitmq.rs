//! Managed RabbitMQ: one broker with a generated user for the shop.

use super::datastore::{self, Parts};
use super::meta::Ctx;
use super::{Object, pod, secrets};
use crate::Result;
use crate::consts::{AMQP_PORT, images};

/// Component name.
pub const COMPONENT: &str = "rabbitmq";

/// RabbitMQ's objects, or nothing when it is external.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let Some(managed) = &ctx.spec.rabbitmq.managed else {
        return Ok(Vec::new());
    };
    let parts = Parts {
        component: COMPONENT,
        image: images::RABBITMQ,
        port: (AMQP_PORT, "amqp"),
        args: Vec::new(),
        env: vec![
            pod::env_value("RABBITMQ_DEFAULT_USER", secrets::RABBITMQ_USER),
            pod::env_secret(
                "RABBITMQ_DEFAULT_PASS",
                &secrets::rabbitmq(&ctx.store),
                secrets::PASSWORD,
            ),
        ],
        data_path: "/var/lib/rabbitmq",
        volumes: vec![pod::scratch("tmp"), pod::scratch("etc")],
        mounts: vec![
            pod::mount("tmp", "/tmp"),
            pod::mount("etc", "/etc/rabbitmq/conf.d"),
        ],
        readiness: pod::exec_probe(
            &["rabbitmq-diagnostics", "-q", "check_port_connectivity"],
            10,
            3,
        ),
        liveness: pod::tcp_probe(AMQP_PORT, 15, 6),
    };
    datastore::render(ctx, managed, parts)
}
