//! Test-only builders: a valid Store and variations of it.

use kube::api::ObjectMeta;

use crate::api::{External, IngressSpec, Store, StoreSpec};

/// A valid Store with every data store managed, as it would come from the API.
pub fn store(name: &str) -> Store {
    let spec: StoreSpec = serde_json::from_value(serde_json::json!({
        "version": "1.2.3",
        "ingress": { "host": "shop.example.com" },
    }))
    .unwrap();
    let mut s = Store::new(name, spec);
    s.metadata = ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some("shop".to_owned()),
        uid: Some("0b1c2d3e-0000-4000-8000-000000000001".to_owned()),
        generation: Some(1),
        ..ObjectMeta::default()
    };
    s
}

impl Store {
    /// The same Store with Redis external.
    #[must_use]
    pub fn with_external_redis(mut self) -> Self {
        self.spec.redis.managed = None;
        self.spec.redis.external = Some(External {
            secret_name: "my-redis".into(),
        });
        self
    }

    /// The same Store, paused.
    #[must_use]
    pub fn paused(mut self) -> Self {
        self.spec.paused = true;
        self
    }

    /// The same Store with a spec the schema would reject (`latest`).
    #[must_use]
    pub fn invalid(mut self) -> Self {
        self.spec.version = "latest".into();
        self
    }

    /// The same Store with another ingress host.
    #[must_use]
    pub fn with_host(mut self, host: &str) -> Self {
        self.spec.ingress = IngressSpec {
            host: host.into(),
            ..self.spec.ingress
        };
        self
    }
}
