//! The five shop services and how they fit together.
//!
//! One table answers every "which service…" question, so the URLs a service
//! is given, the NetworkPolicies that let it through and the order the
//! local stack starts services in cannot disagree.

/// One of the five shop services. (Not a Kubernetes `Service`: the operator
/// renders one of those per `ShopService`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ShopService {
    /// Accounts, login, tokens.
    User,
    /// Catalog, categories, search, stock.
    Product,
    /// Payments, refunds.
    Payment,
    /// Cart, checkout, orders; owns the checkout saga.
    Order,
    /// The server-rendered shop shoppers use.
    Storefront,
}

impl ShopService {
    /// Every service, callees before their callers: the order the local
    /// stack starts them and the operator rolls them out.
    pub const ALL: [ShopService; 5] = [
        ShopService::User,
        ShopService::Product,
        ShopService::Payment,
        ShopService::Order,
        ShopService::Storefront,
    ];

    /// The four JSON API services (everything but the storefront).
    pub const BACKENDS: [ShopService; 4] = [
        ShopService::User,
        ShopService::Product,
        ShopService::Payment,
        ShopService::Order,
    ];

    /// Short name: child objects are `<store>-<name>`, labels and logs use it.
    pub const fn name(self) -> &'static str {
        match self {
            ShopService::User => "user",
            ShopService::Product => "product",
            ShopService::Payment => "payment",
            ShopService::Order => "order",
            ShopService::Storefront => "storefront",
        }
    }

    /// Cargo package, binary and image repository name; also the name a
    /// service reports itself under in logs and metrics.
    pub const fn package(self) -> &'static str {
        match self {
            ShopService::User => "user-service",
            ShopService::Product => "product-service",
            ShopService::Payment => "payment-service",
            ShopService::Order => "order-service",
            ShopService::Storefront => "storefront",
        }
    }

    /// Port of the public HTTP API (the `PORT` default).
    pub const fn port(self) -> u16 {
        match self {
            ShopService::User => 3001,
            ShopService::Product => 3002,
            ShopService::Payment => 8002,
            ShopService::Order => 8001,
            ShopService::Storefront => 3000,
        }
    }

    /// Admin port on a developer machine, where all five share one host.
    /// In a cluster every pod uses [`crate::admin::PORT`].
    pub const fn local_admin_port(self) -> u16 {
        match self {
            ShopService::User => 9001,
            ShopService::Product => 9002,
            ShopService::Payment => 9004,
            ShopService::Order => 9003,
            ShopService::Storefront => crate::admin::PORT,
        }
    }

    /// The PostgreSQL database (and role) the service owns, if it keeps data.
    pub const fn database(self) -> Option<&'static str> {
        match self {
            ShopService::User => Some("users"),
            ShopService::Product => Some("products"),
            ShopService::Payment => Some("payments"),
            ShopService::Order => Some("orders"),
            ShopService::Storefront => None,
        }
    }

    /// Whether the service uses Redis (login throttling, the catalog cache).
    pub const fn uses_redis(self) -> bool {
        matches!(self, ShopService::User | ShopService::Product)
    }

    /// Whether the service publishes or consumes events on RabbitMQ.
    pub const fn uses_broker(self) -> bool {
        matches!(
            self,
            ShopService::Product | ShopService::Payment | ShopService::Order
        )
    }

    /// The environment variable that carries this service's base URL to the
    /// services that call it.
    pub const fn url_env(self) -> Option<&'static str> {
        match self {
            ShopService::User => Some("USER_URL"),
            ShopService::Product => Some("PRODUCT_URL"),
            ShopService::Payment => Some("PAYMENT_URL"),
            ShopService::Order => Some("ORDER_URL"),
            ShopService::Storefront => None,
        }
    }

    /// The services this one calls over HTTP. A service is given exactly
    /// these `*_URL` variables, and its NetworkPolicy lets exactly these
    /// through. (order-service reaches payment-service only through events.)
    pub const fn calls(self) -> &'static [ShopService] {
        match self {
            ShopService::Storefront => &[
                ShopService::User,
                ShopService::Product,
                ShopService::Payment,
                ShopService::Order,
            ],
            ShopService::Order => &[ShopService::Product],
            ShopService::User | ShopService::Product | ShopService::Payment => &[],
        }
    }

    /// The services that call this one (the inverse of [`ShopService::calls`]).
    pub fn callers(self) -> impl Iterator<Item = ShopService> {
        ShopService::ALL
            .into_iter()
            .filter(move |caller| caller.calls().contains(&self))
    }

    /// Path prefixes the edge routes to this service.
    pub const fn ingress_paths(self) -> &'static [&'static str] {
        match self {
            ShopService::Storefront => &["/"],
            ShopService::User => &["/api/users"],
            ShopService::Product => &["/api/products", "/api/categories"],
            ShopService::Payment => &["/api/payments"],
            ShopService::Order => &["/api/cart", "/api/orders"],
        }
    }

    /// The service's base URL on a developer machine.
    pub fn local_url(self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// Finds a service by its short name or its package name.
    pub fn from_name(name: &str) -> Option<ShopService> {
        ShopService::ALL
            .into_iter()
            .find(|service| service.name() == name || service.package() == name)
    }
}

impl std::fmt::Display for ShopService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.package())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn callees_start_before_their_callers() {
        for (position, service) in ShopService::ALL.iter().enumerate() {
            for callee in service.calls() {
                let callee_position = ShopService::ALL.iter().position(|s| s == callee);
                assert!(
                    callee_position < Some(position),
                    "{service} calls {callee}, which starts later"
                );
            }
        }
    }

    #[test]
    fn ports_databases_and_names_are_unique() {
        let unique = |values: Vec<String>| values.iter().collect::<HashSet<_>>().len() == 5;
        assert!(unique(
            ShopService::ALL.map(|s| s.port().to_string()).to_vec()
        ));
        assert!(unique(
            ShopService::ALL
                .map(|s| s.local_admin_port().to_string())
                .to_vec()
        ));
        assert!(unique(
            ShopService::ALL.map(|s| s.name().to_owned()).to_vec()
        ));
        assert!(unique(
            ShopService::ALL.map(|s| s.package().to_owned()).to_vec()
        ));
    }

    #[test]
    fn every_callee_has_a_url_variable() {
        for service in ShopService::ALL {
            for callee in service.calls() {
                assert!(callee.url_env().is_some(), "{callee} has no *_URL");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for service in ShopService::ALL {
            assert_eq!(ShopService::from_name(service.name()), Some(service));
            assert_eq!(ShopService::from_name(service.package()), Some(service));
        }
        assert_eq!(ShopService::from_name("cart"), None);
    }

    #[test]
    fn callers_invert_calls() {
        let order_callers: Vec<_> = ShopService::Order.callers().collect();
        assert_eq!(order_callers, [ShopService::Storefront]);
        let product_callers: Vec<_> = ShopService::Product.callers().collect();
        assert_eq!(
            product_callers,
            [ShopService::Order, ShopService::Storefront]
        );
        assert_eq!(ShopService::Payment.callers().count(), 1);
    }
}
