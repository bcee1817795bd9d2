//! Live reloads: through the admin call while partners keep calling (a partner added, another
//! removed, a request in flight across the swap), on a file change after the debounce, and
//! refused reloads that leave the old table serving.

use crate::common::{
    self, assert_error, assert_metric, metric, onboard, onboarding, partner, rac_path,
    rewrite_routes, rps_path, scs_path, Admin, WITHIN,
};
use crate::load::{Load, MakeRequest, Stream};
use crate::support::{bodies, TestHub};
use aidhub::client::Version;
use aidhub::sim::SIM_ACTIVATION_CODE;
use http::Method;
use uuid::Uuid;

/// The four load streams: Send CSIM Status and Request Activation Code (CMP → MSP) on a
/// federated token, Request Profile Status from the other CMP, and onboarding of fresh
/// tokens (MSP → CMP).
fn streams(hub: &TestHub, one: Uuid, two: Uuid) -> Vec<Stream> {
    let stream = |name, from, target, method, expect, request: MakeRequest| {
        let (client, caller) = partner(hub, from);
        Stream {
            name,
            client,
            caller,
            target,
            method,
            request,
            expect,
        }
    };
    vec![
        stream(
            "Send CSIM Status cmpone -> mspalpha",
            "cmpone",
            "mspalpha",
            Method::POST,
            201,
            Box::new(move || (scs_path(&one), Some(bodies::csim_status("installed")))),
        ),
        stream(
            "Request Activation Code cmpone -> mspalpha",
            "cmpone",
            "mspalpha",
            Method::POST,
            200,
            Box::new(move || {
                (
                    rac_path(&one),
                    Some(bodies::ac_request(&Uuid::new_v4(), "tcu")),
                )
            }),
        ),
        stream(
            "Request Profile Status cmptwo -> mspalpha",
            "cmptwo",
            "mspalpha",
            Method::GET,
            200,
            Box::new(move || (rps_path(&two), None)),
        ),
        stream(
            "Send MSP Token mspalpha -> cmptwo",
            "mspalpha",
            "cmptwo",
            Method::POST,
            201,
            Box::new(|| {
                let (path, body, _) = onboarding("cmptwo");
                (path, Some(body))
            }),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reload_under_load_adds_and_removes_partners_without_failing_a_request() {
    let (hub, admin) = common::stage_reloaded_on_request().await;
    let before = admin.config().await;
    assert_eq!(before["version"], 1);
    let one = onboard(&hub, "mspalpha", "cmpone").await;
    let two = onboard(&hub, "mspalpha", "cmptwo").await;

    // mspbeta, about to be removed, opens its connection now and keeps it in its pool.
    let (beta, beta_caller) = partner(&hub, "mspbeta");
    let (path, body, beta_token) = onboarding("cmpone");
    let reply = beta
        .call(&beta_caller, "cmpone", Method::POST, &path, Some(&body))
        .await
        .expect("mspbeta onboards");
    assert_eq!(reply.status, 201, "{:?}", reply.body);

    let load = Load::start(streams(&hub, one, two));
    load.advance(&[0; 4], 3).await;

    // A slow activation-code request towards mspbeta is in flight when the table changes.
    let (cmp, cmp_caller) = partner(&hub, "cmpone");
    let slow_path = rac_path(&beta_token);
    let slow_body = bodies::ac_request(&Uuid::new_v4(), "slow");
    let in_flight = tokio::spawn(async move {
        cmp.call(
            &cmp_caller,
            "mspbeta",
            Method::POST,
            &slow_path,
            Some(&slow_body),
        )
        .await
    });
    let beta_backend = hub.partner("mspbeta").clone();
    let held = crate::support::eventually(WITHIN, || {
        beta_backend
            .seen()
            .iter()
            .any(|s| s.path.starts_with("/v1/activation-code-requests/"))
    })
    .await;
    assert!(held, "mspbeta's backend holds the slow request");

    let (gamma, gamma_block) = common::new_msp(&hub, "mspgamma").await;
    rewrite_routes(&hub, |routes| {
        format!("{}{gamma_block}", common::remove_partner(routes, "mspbeta"))
    });
    let during = load.counts();
    let reload = admin.post("/reload").await;
    assert_eq!(reload.status, 200, "POST /reload: {}", reload.body);
    let snap = hub.running.as_ref().expect("running").hub.snapshot();
    assert_eq!(reload.json()["version"], 2);
    assert_eq!(reload.json()["hash"], snap.hash.as_str());
    assert_ne!(before["hash"], snap.hash.as_str(), "the table changed");
    assert_eq!(snap.version, 2);

    // The request in flight finishes on the table it started with.
    let reply = in_flight
        .await
        .expect("the slow call's task")
        .expect("the slow call gets an answer");
    assert_eq!(
        reply.status, 200,
        "the request in flight across the reload: {:?}",
        reply.body
    );
    assert_eq!(reply.json()["activationCode"], SIM_ACTIVATION_CODE);

    // The removed partner: refused on its open connection, and at the handshake on a new one.
    let reply = beta
        .call(&beta_caller, "cmpone", Method::POST, &path, Some(&body))
        .await
        .expect("the pooled connection opened before the reload still answers");
    assert_error(
        &reply,
        403,
        "214",
        "a removed partner on an open connection",
    );
    let fresh = hub
        .client("mspbeta", Version::Http1)
        .expect("a client with mspbeta's certificate");
    let (path, body, _) = onboarding("cmpone");
    let refused = fresh
        .call(&beta_caller, "cmpone", Method::POST, &path, Some(&body))
        .await;
    assert!(
        refused.is_err(),
        "a new connection of a removed partner fails its handshake: {refused:?}"
    );
    let reply = hub
        .call(
            "cmpone",
            "mspbeta",
            Method::GET,
            &rps_path(&beta_token),
            None,
        )
        .await;
    assert_error(&reply, 404, "93", "a removed partner as target");

    // The added partner is reachable at once, with its own certificate and credential.
    let token = onboard(&hub, "mspgamma", "cmpone").await;
    let before_gamma = gamma.seen_count();
    let ask = bodies::ac_request(&Uuid::new_v4(), "tcu");
    let reply = hub
        .call(
            "cmpone",
            "mspgamma",
            Method::POST,
            &rac_path(&token),
            Some(&ask),
        )
        .await;
    assert_eq!(reply.status, 200, "cmpone -> mspgamma: {:?}", reply.body);
    assert_eq!(
        gamma.seen_count(),
        before_gamma + 1,
        "mspgamma's backend answered"
    );

    load.advance(&during, 3).await;
    let (total, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} of {total} calls under load failed across the reload:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_metric(
        &admin.metrics().await,
        "aidhub_reloads_total{result=\"ok\"}",
        1.0,
    );
}

/// A stage whose hub reloads 100 ms after its files go quiet.
async fn watching_stage() -> TestHub {
    TestHub::builder()
        .hub(|h| format!("{h}\n[reload]\ndebounce_ms = 100\n"))
        .start()
        .await
        .expect("the stage starts")
}

/// Writes `text` to the stage's routes.toml until `reloaded` holds. The watch is set up by a
/// task of the hub: write again if the first write came before it (each write of the same
/// text loads the same table).
async fn write_routes_until<F, Fut>(hub: &TestHub, text: &str, reloaded: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..5 {
        std::fs::write(common::routes_path(hub), text).expect("write routes.toml");
        if common::until(WITHIN / 5, &reloaded).await {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routes_file_change_is_reloaded_after_the_debounce() {
    let hub = watching_stage().await;
    let admin = Admin::of(&hub);
    let before = admin.config().await;
    let (_gamma, block) = common::new_msp(&hub, "mspgamma").await;
    let routes = std::fs::read_to_string(common::routes_path(&hub)).expect("routes.toml");
    let changed = format!("{routes}{block}");
    let seen = write_routes_until(&hub, &changed, || async {
        admin.config().await["partners"] == 5
    })
    .await;
    assert!(
        seen,
        "/config shows the new table: {}",
        admin.config().await
    );
    let after = admin.config().await;
    assert!(after["version"].as_u64() >= Some(2), "{after}");
    assert_ne!(after["hash"], before["hash"]);
    assert!(after["last_reload_error"].is_null(), "{after}");
    let snap = hub.running.as_ref().expect("running").hub.snapshot();
    assert_eq!(after["hash"], snap.hash.as_str());
    onboard(&hub, "mspgamma", "cmpone").await;
    let metrics = admin.metrics().await;
    assert_eq!(
        metric(&metrics, "aidhub_reloads_total{result=\"failed\"}"),
        None,
        "no half-written file was loaded:\n{metrics}"
    );
}

/// Opening and reading the watched files (a backup, a health check, the hub's own reload)
/// changes nothing and reloads nothing; the watch is proved armed by a write first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_watched_files_does_not_reload() {
    let hub = watching_stage().await;
    let admin = Admin::of(&hub);
    let routes = std::fs::read_to_string(common::routes_path(&hub)).expect("routes.toml");
    let armed = write_routes_until(&hub, &format!("{routes}\n# touched\n"), || async {
        admin.config().await["version"].as_u64() >= Some(2)
    })
    .await;
    assert!(armed, "a write reloads: {}", admin.config().await);
    // Let that reload's own reads of the files pass the debounce too.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let version = admin.config().await["version"].clone();
    for _ in 0..20 {
        std::fs::read(common::routes_path(&hub)).expect("read routes.toml");
        for entry in std::fs::read_dir(hub.certs()).expect("the certificates") {
            let path = entry.expect("an entry").path();
            if path.is_file() {
                std::fs::read(&path).expect("read a certificate");
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = admin.config().await;
    assert_eq!(
        after["version"], version,
        "reads reloaded the configuration: {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reload_is_refused_with_its_reasons_and_the_old_table_keeps_serving() {
    let (hub, admin) = common::stage_reloaded_on_request().await;
    let before = admin.config().await;
    let good = std::fs::read_to_string(common::routes_path(&hub)).expect("routes.toml");

    // An unknown role.
    rewrite_routes(&hub, |routes| {
        common::edit_partner(routes, "cmpone", |b| {
            b.replace("role = \"cmp\"", "role = \"car\"")
        })
    });
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    let problems = reply.json()["problems"].clone();
    assert!(
        problems.as_array().is_some_and(|p| p.iter().any(|p| p
            .as_str()
            .is_some_and(|p| p.ends_with("partner[2] (cmpone).role: must be \"msp\" or \"cmp\"")))),
        "the problem is listed with its location: {}",
        reply.body
    );
    let config = admin.config().await;
    assert_eq!(config["version"], 1, "{config}");
    assert_eq!(config["hash"], before["hash"], "the old table is in force");
    assert!(
        config["last_reload_error"]
            .as_str()
            .is_some_and(|e| e.contains("(cmpone).role")),
        "{config}"
    );
    assert_metric(
        &admin.metrics().await,
        "aidhub_reloads_total{result=\"failed\"}",
        1.0,
    );
    // cmpone is still a CMP on the old table.
    let token = onboard(&hub, "mspalpha", "cmpone").await;
    let reply = hub
        .call(
            "cmpone",
            "mspalpha",
            Method::POST,
            &scs_path(&token),
            Some(&bodies::csim_status("installed")),
        )
        .await;
    assert_eq!(reply.status, 201, "{:?}", reply.body);

    // A trust anchor file that does not exist.
    std::fs::write(
        common::routes_path(&hub),
        common::edit_partner(&good, "cmptwo", |b| {
            b.replace("ca = [\"certs/ca.pem\"]", "ca = [\"certs/missing-ca.pem\"]")
        }),
    )
    .expect("write routes.toml");
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(
        reply.body.contains("partner cmptwo: upstream.ca") && reply.body.contains("missing-ca.pem"),
        "the missing file is named: {}",
        reply.body
    );
    let metrics = admin.metrics().await;
    assert_metric(&metrics, "aidhub_reloads_total{result=\"failed\"}", 2.0);
    assert_eq!(
        metric(&metrics, "aidhub_reloads_total{result=\"ok\"}"),
        None
    );
    onboard(&hub, "mspalpha", "cmptwo").await;

    // Put right, it loads; the problems are cleared.
    std::fs::write(common::routes_path(&hub), &good).expect("write routes.toml");
    let reply = admin.post("/reload").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let config = admin.config().await;
    assert_eq!(config["version"], 2);
    assert_eq!(
        config["hash"], before["hash"],
        "the same files hash the same"
    );
    assert!(config["last_reload_error"].is_null(), "{config}");
}

/// A reload that changes how upstream connections are opened or kept (here
/// `timeouts.upstream_idle_ms`) builds every pool again, its connections and counts starting
/// over; a reload that changes nothing of the sort keeps each pool, idle connections and all.
#[tokio::test]
async fn a_reload_rebuilds_the_upstream_pools_only_when_their_settings_change() {
    let (hub, admin) = common::stage_reloaded_on_request().await;
    let pool = |hub: &TestHub| {
        let snap = hub.running.as_ref().expect("running").hub.snapshot();
        snap.upstream("cmpone").expect("cmpone's upstream").clone()
    };
    let edit_hub_toml = |edit: &dyn Fn(&str) -> String| {
        let text = std::fs::read_to_string(&hub.hub_toml).expect("read hub.toml");
        std::fs::write(&hub.hub_toml, edit(&text)).expect("write hub.toml");
    };
    onboard(&hub, "mspalpha", "cmpone").await;
    let before = pool(&hub);
    assert_eq!(before.connections_opened(), 1);

    edit_hub_toml(&|t| t.replace("default_ms = 2000", "default_ms = 2500"));
    let reload = admin.post("/reload").await;
    assert_eq!(reload.status, 200, "POST /reload: {}", reload.body);
    assert!(
        std::sync::Arc::ptr_eq(&before, &pool(&hub)),
        "an exchange timeout changed: the pool is kept"
    );
    assert_eq!(before.idle_connections(), 1);

    edit_hub_toml(&|t| {
        t.replace(
            "connect_ms = 500",
            "connect_ms = 500\nupstream_idle_ms = 30000",
        )
    });
    let reload = admin.post("/reload").await;
    assert_eq!(reload.status, 200, "POST /reload: {}", reload.body);
    let after = pool(&hub);
    assert!(
        !std::sync::Arc::ptr_eq(&before, &after),
        "the idle timeout changed: a new pool"
    );
    assert_eq!(
        (after.connections_opened(), after.idle_connections()),
        (0, 0)
    );
    onboard(&hub, "mspalpha", "cmpone").await;
    assert_eq!(after.connections_opened(), 1, "the new pool serves");
}
