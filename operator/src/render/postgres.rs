//! Managed PostgreSQL: one server, one database and one role per service,
//! created by an init script on first start with the generated passwords —
//! or, with `provider: CloudNativePG`, a CloudNativePG `Cluster`
//! (`delegated::cnpg`).

use std::fmt::Write;

use k8s_openapi::api::core::v1::{ConfigMap, ConfigMapVolumeSource, Volume};
use storekeeper_contract::ShopService;

use super::datastore::{self, Parts};
use super::meta::Ctx;
use super::{ChildKind, Object, Step, components, delegated, images, pod, secrets};
use crate::Result;
use crate::api::Managed;

const INIT_VOLUME: &str = "init";

/// Environment variable the init script reads a database's password from.
fn password_env(database: &str) -> String {
    format!("{}_PASSWORD", database.to_uppercase())
}

/// The init script: runs once, on an empty data directory (the image's
/// `docker-entrypoint-initdb.d` contract). Passwords come from the
/// environment, so the script itself holds no secret.
pub fn init_script() -> String {
    let mut s = String::from(
        "#!/bin/sh\n# Creates one role and one database per shop service.\nset -eu\n\
         create() {\n  psql -v ON_ERROR_STOP=1 --username \"$POSTGRES_USER\" --dbname postgres \
         -v role=\"$1\" -v pw=\"$2\" <<'SQL'\nCREATE ROLE :\"role\" LOGIN PASSWORD :'pw';\n\
         CREATE DATABASE :\"role\" OWNER :\"role\";\nSQL\n}\n",
    );
    for db in ShopService::ALL.iter().filter_map(|s| s.database()) {
        let _ = writeln!(s, "create {db} \"${}\"", password_env(db));
    }
    s
}

/// The image PostgreSQL runs (the backup runs it too, so `pg_dump` is
/// always of the server's major).
pub fn image(managed: &Managed) -> &str {
    datastore::image(managed, images::POSTGRES)
}

/// PostgreSQL's objects, or nothing when it is external.
pub fn render(ctx: &Ctx<'_>) -> Result<Vec<Object>> {
    let Some(managed) = &ctx.spec.postgres.managed else {
        return Ok(Vec::new());
    };
    if delegated::postgres(ctx.spec) {
        return delegated::cnpg::render(ctx, managed);
    }
    let secret = secrets::postgres(&ctx.store);
    let init_name = ctx.name("postgres-init");
    let init = ConfigMap {
        metadata: ctx.meta(
            init_name.clone(),
            components::POSTGRES,
            datastore::image_tag(image(managed)),
        ),
        data: Some([("init.sh".to_owned(), init_script())].into()),
        ..ConfigMap::default()
    };
    let mut env = vec![
        pod::env_value("POSTGRES_USER", "postgres"),
        pod::env_secret("POSTGRES_PASSWORD", &secret, secrets::POSTGRES_SUPERUSER),
        pod::env_value("PGDATA", "/var/lib/postgresql/data/pgdata"),
    ];
    for db in ShopService::ALL.iter().filter_map(|s| s.database()) {
        env.push(pod::env_secret(&password_env(db), &secret, db));
    }
    let parts = Parts {
        component: components::POSTGRES,
        image: image(managed).to_owned(),
        port: (components::POSTGRES_PORT, "postgres"),
        args: Vec::new(),
        env,
        data_path: "/var/lib/postgresql/data",
        volumes: vec![
            pod::scratch("run"),
            pod::scratch("tmp"),
            Volume {
                name: INIT_VOLUME.to_owned(),
                config_map: Some(ConfigMapVolumeSource {
                    name: init_name.clone(),
                    default_mode: Some(0o555),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
        ],
        mounts: vec![
            pod::mount("run", "/var/run/postgresql"),
            pod::mount("tmp", "/tmp"),
            pod::mount(INIT_VOLUME, "/docker-entrypoint-initdb.d"),
        ],
        readiness: pod::exec_probe(&["pg_isready", "-U", "postgres", "-h", "127.0.0.1"], 5, 3),
        liveness: pod::tcp_probe(components::POSTGRES_PORT, 10, 6),
    };
    let mut out = vec![Object::new(
        ChildKind::ConfigMap,
        Step::Data,
        &init_name,
        &init,
    )?];
    out.extend(datastore::render(ctx, managed, parts)?);
    Ok(out)
}
