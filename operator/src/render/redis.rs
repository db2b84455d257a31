//! Managed Redis: one password-protected server with append-only persistence.

use super::datastore::{self, Parts};
use super::meta::Ctx;
use super::{Object, components, images, pod, secrets};
use crate::Result;

/// Redis' objects, or nothing when it is external.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let Some(managed) = &ctx.spec.redis.managed else {
        return Ok(Vec::new());
    };
    let parts = Parts {
        component: components::REDIS,
        image: datastore::image(managed, images::REDIS).to_owned(),
        port: (components::REDIS_PORT, "redis"),
        // `$(VAR)` is expanded by the kubelet, so the password never sits in the spec.
        args: [
            "--requirepass",
            "$(REDIS_PASSWORD)",
            "--appendonly",
            "yes",
            "--dir",
            "/data",
        ]
        .map(str::to_owned)
        .to_vec(),
        env: vec![pod::env_secret(
            "REDIS_PASSWORD",
            &secrets::redis(&ctx.store),
            secrets::PASSWORD,
        )],
        data_path: "/data",
        volumes: vec![pod::scratch("tmp")],
        mounts: vec![pod::mount("tmp", "/tmp")],
        readiness: pod::tcp_probe(components::REDIS_PORT, 5, 3),
        liveness: pod::tcp_probe(components::REDIS_PORT, 10, 6),
    };
    datastore::render(ctx, managed, parts)
}
