//! `GET /openapi.json` describes exactly the routes the router serves.

mod support;

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::Value;
use support::Ctx;

/// Every (method, path template) the router serves, besides `/openapi.json` itself.
const ROUTES: [(&str, &str); 9] = [
    ("get", "/api/categories"),
    ("get", "/api/products"),
    ("post", "/api/products"),
    ("get", "/api/products:batchGet"),
    ("get", "/api/products/{id}"),
    ("patch", "/api/products/{id}"),
    ("delete", "/api/products/{id}"),
    ("get", "/api/products/{id}/stock"),
    ("get", "/images/{category}/{file}"),
];

#[tokio::test]
async fn document_matches_the_router() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let response = ctx.app.get("/openapi.json").send().await;
    response.assert_status(StatusCode::OK);
    let doc: Value = response.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(documented, served);

    // Each documented route is really routed: a concrete request never hits
    // the router's "no route" fallback or "wrong method" answer.
    for (method, path) in &ROUTES {
        let uri = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{category}", "kitchen")
            .replace("{file}", "pan.svg");
        let request = ctx
            .app
            .request(method.to_uppercase().parse().unwrap(), &uri);
        let response = request.send().await;
        assert_ne!(
            response.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert!(
            !response.text().contains("no route for"),
            "{method} {uri}: {}",
            response.text()
        );
    }
    ctx.cleanup().await;
}

#[tokio::test]
async fn document_names_sorts_bounds_and_security() {
    let (_database, pool) = support::database().await;
    let ctx = Ctx::new(pool);
    let doc: Value = ctx.app.get("/openapi.json").send().await.json();
    let params = doc["paths"]["/api/products"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let param = |name: &str| {
        params
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
            .clone()
    };
    assert_eq!(
        param("sort")["schema"]["enum"],
        serde_json::json!(["relevance", "price_asc", "price_desc", "name", "newest"])
    );
    assert_eq!(param("per_page")["schema"]["maximum"], 100);
    assert_eq!(param("per_page")["schema"]["minimum"], 1);
    for name in ["category", "q", "page"] {
        param(name);
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["paths"]["/api/products"]["post"]["security"].is_array());
    assert!(doc["paths"]["/api/products"]["post"]["responses"]["409"].is_object());
    ctx.cleanup().await;
}
