//! The admin API's TS.43 views: transfers (where each stopped) and the carriers measured
//! against the Android page's requirements.

use super::{bad_query, reply, unavailable};
use crate::hub::Hub;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::json;

/// `GET /ts43/transfers?carrier=&limit=`: newest first.
pub async fn transfers(hub: &Hub, query: &str) -> Response<Full<Bytes>> {
    let mut carrier = None;
    let mut limit = 100;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "carrier" => carrier = Some(value.to_owned()),
            "limit" => match value.parse() {
                Ok(n) => limit = n,
                Err(_) => return bad_query(key),
            },
            _ => return bad_query(key),
        }
    }
    match hub
        .ts43()
        .transfers
        .transfers(carrier.as_deref(), limit)
        .await
    {
        Ok(list) => reply(StatusCode::OK, json!(list)),
        Err(e) => unavailable(e),
    }
}

/// `GET /ts43/carriers`: each carrier's requirements report, normalisations and violations.
pub fn carriers(hub: &Hub) -> Response<Full<Bytes>> {
    let snap = hub.snapshot();
    let ids: Vec<_> = snap.routes.carriers.iter().map(|c| c.id.clone()).collect();
    let mut report = crate::ts43::scoring::report(hub.metrics(), &ids);
    if let Some(list) = report.as_array_mut() {
        for (entry, carrier) in list.iter_mut().zip(&snap.routes.carriers) {
            entry["base_path"] = json!(carrier.base_path);
            entry["ecs"] = json!(format!(
                "{}{}",
                carrier.ecs.origin.to_string().trim_end_matches('/'),
                carrier.ecs.path
            ));
        }
    }
    reply(StatusCode::OK, report)
}
