//! Managed RabbitMQ: one broker with a generated user for the shop — or,
//! with `provider: RabbitmqClusterOperator`, a `RabbitmqCluster`
//! (`delegated::rabbitmq_cluster`).

use super::datastore::{self, Parts};
use super::meta::Ctx;
use super::{Object, components, delegated, images, pod, secrets};
use crate::Result;

/// RabbitMQ's objects, or nothing when it is external.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let Some(managed) = &ctx.spec.rabbitmq.managed else {
        return Ok(Vec::new());
    };
    if delegated::rabbitmq(ctx.spec) {
        return delegated::rabbitmq_cluster::render(ctx, managed);
    }
    let parts = Parts {
        component: components::RABBITMQ,
        image: datastore::image(managed, images::RABBITMQ).to_owned(),
        port: (components::RABBITMQ_PORT, "amqp"),
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
        liveness: pod::tcp_probe(components::RABBITMQ_PORT, 15, 6),
    };
    datastore::render(ctx, managed, parts)
}
