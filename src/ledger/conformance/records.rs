//! Checks of profiles, inspection, export/import, stats and retention.

use uuid::Uuid;

use super::{id, new_fed, new_req, pair_a, pair_b, STALE_MS};
use crate::ledger::{
    AcState, ExportRecord, Ledger, LedgerError, LedgerStats, Outcome, Pair, ProfileEvent,
    ProfileSource, RequestFilter, Settle, SweepReport, Withdrawal,
};

fn event(iccid: &str, status: &str, source: ProfileSource) -> ProfileEvent {
    ProfileEvent {
        iccid: iccid.into(),
        status: status.into(),
        source,
    }
}

fn statuses(profiles: &[crate::ledger::Profile]) -> Vec<(&str, &str, ProfileSource, u64)> {
    profiles
        .iter()
        .map(|p| (p.iccid.as_str(), p.status.as_str(), p.source, p.at))
        .collect()
}

/// The last status per (token, ICCID) wins; tokens do not mix; ICCIDs come sorted.
pub async fn profiles_keep_the_last_status(l: &dyn Ledger) {
    let (t1, t2) = (id(), id());
    let (x, y) = ("8988303000000000001", "89883030000000000002");
    let first = [
        event(y, "enabled", ProfileSource::CsimStatus),
        event(x, "valid", ProfileSource::ProfileInformation),
    ];
    l.record_profiles(t1, &first, 10).await.unwrap();
    l.record_profiles(
        t2,
        &[event(x, "installed", ProfileSource::ProfileStatusAnswer)],
        11,
    )
    .await
    .unwrap();
    let later = [
        event(x, "deleted", ProfileSource::CsimStatus),
        event(x, "dead", ProfileSource::Swapped),
    ];
    l.record_profiles(t1, &later, 20).await.unwrap();
    l.record_profiles(t1, &[], 30).await.unwrap();

    let mine = l.profiles(t1).await.unwrap();
    // In byte order of the ICCIDs: the 20-digit `y` sorts before the 19-digit `x`.
    let expected = vec![
        (y, "enabled", ProfileSource::CsimStatus, 10),
        (x, "dead", ProfileSource::Swapped, 20),
    ];
    assert_eq!(statuses(&mine), expected);
    assert!(mine.iter().all(|p| p.msp_token == t1));
    let theirs = l.profiles(t2).await.unwrap();
    assert_eq!(
        statuses(&theirs),
        vec![(x, "installed", ProfileSource::ProfileStatusAnswer, 11)]
    );
    assert_eq!(l.profiles(id()).await, Ok(vec![]));
    assert_eq!(l.stats().await.unwrap().profiles, 3);
}

/// One request per state: (pending a@100, open b@200, closed (m2,c1)@300, answering a@400).
async fn four_requests(l: &dyn Ledger) -> [Uuid; 4] {
    let (a, b, other) = (pair_a(), pair_b(), Pair::new("m2", "c1"));
    let ids = [id(), id(), id(), id()];
    let token = id();
    l.open_request(new_req(ids[0], token, &a, 100))
        .await
        .unwrap();
    l.open_request(new_req(ids[1], id(), &b, 200))
        .await
        .unwrap();
    l.settle_request(ids[1], Settle::Async { deadline: 9_000 }, 201)
        .await
        .unwrap();
    l.open_request(new_req(ids[2], id(), &other, 300))
        .await
        .unwrap();
    l.settle_request(ids[2], Settle::Sync, 301).await.unwrap();
    let answering = id();
    l.open_request(new_req(ids[3], answering, &a, 400))
        .await
        .unwrap();
    l.settle_request(ids[3], Settle::Async { deadline: 9_000 }, 401)
        .await
        .unwrap();
    l.claim_answer(ids[3], &a.msp, &a.cmp, answering, 402, STALE_MS)
        .await
        .unwrap();
    ids
}

/// Filters combine; results come oldest first, cut at the limit.
pub async fn list_requests_filters(l: &dyn Ledger) {
    let [r1, r2, r3, r4] = four_requests(l).await;
    let list = |filter: RequestFilter| async move {
        let found = l.list_requests(&filter).await.unwrap();
        found.iter().map(|r| r.id).collect::<Vec<_>>()
    };
    let partner = |p: &str| Some(p.to_string());
    assert_eq!(list(RequestFilter::default()).await, vec![r1, r2, r3, r4]);
    let open_only = RequestFilter {
        open_only: true,
        ..Default::default()
    };
    assert_eq!(list(open_only.clone()).await, vec![r1, r2, r4]);
    assert_eq!(
        list(RequestFilter {
            partner: partner("c2"),
            ..Default::default()
        })
        .await,
        vec![r2]
    );
    assert_eq!(
        list(RequestFilter {
            partner: partner("m1"),
            ..Default::default()
        })
        .await,
        vec![r1, r2, r4]
    );
    let c1_open = RequestFilter {
        partner: partner("c1"),
        ..open_only
    };
    assert_eq!(list(c1_open).await, vec![r1, r4]);
    let old = RequestFilter {
        older_than_ms: Some(200),
        now: 450,
        ..Default::default()
    };
    assert_eq!(list(old).await, vec![r1, r2]);
    assert_eq!(
        list(RequestFilter {
            limit: Some(2),
            ..Default::default()
        })
        .await,
        vec![r1, r2]
    );
    assert_eq!(
        list(RequestFilter {
            partner: partner("nobody"),
            ..Default::default()
        })
        .await,
        Vec::<Uuid>::new()
    );
}

/// Every record comes out as one JSON line that reads back as the same record.
pub async fn export_round_trips_as_json_lines(l: &dyn Ledger) {
    let token = id();
    l.confirm_federation(new_fed(token, &pair_a(), 1))
        .await
        .unwrap();
    l.open_request(new_req(id(), token, &pair_a(), 2))
        .await
        .unwrap();
    l.record_profiles(
        token,
        &[event(
            "8988303000000000001",
            "valid",
            ProfileSource::SyncAnswer,
        )],
        3,
    )
    .await
    .unwrap();

    let mut lines = Vec::new();
    let mut sink = |record: ExportRecord| {
        let line =
            serde_json::to_string(&record).map_err(|e| LedgerError::Storage(e.to_string()))?;
        assert!(!line.contains('\n'));
        let back: ExportRecord = serde_json::from_str(&line).unwrap();
        assert_eq!(back, record);
        lines.push(line);
        Ok(())
    };
    assert_eq!(l.export(&mut sink).await, Ok(3));
    let kinds = ["federation", "request", "profile"].map(|k| format!(r#"{{"kind":"{k}","#));
    for (line, kind) in lines.iter().zip(&kinds) {
        assert!(line.starts_with(kind.as_str()), "{line}");
    }

    // A failing sink stops the export with its error.
    let mut calls = 0;
    let mut failing = |_: ExportRecord| {
        calls += 1;
        Err(LedgerError::Storage("sink full".into()))
    };
    assert_eq!(
        l.export(&mut failing).await,
        Err(LedgerError::Storage("sink full".into()))
    );
    assert_eq!(calls, 1);
}

/// Import learns what is new, keeps what is known and reports the other pairs' tokens.
pub async fn import_reports_added_present_and_conflicting(l: &dyn Ledger) {
    let (a, b) = (pair_a(), pair_b());
    let [t1, t2, t3, t4] = [id(), id(), id(), id()];
    l.confirm_federation(new_fed(t1, &a, 1)).await.unwrap();
    l.confirm_federation(new_fed(t2, &b, 1)).await.unwrap();
    let lines = vec![
        new_fed(t1, &a, 5),
        new_fed(t2, &a, 5),
        new_fed(t3, &a, 5),
        new_fed(t4, &b, 5),
        new_fed(t3, &a, 6),
    ];
    let report = l.import_federations(lines).await.unwrap();
    assert_eq!((report.added, report.already_present), (2, 2));
    assert_eq!(report.conflicting, vec![t2]);
    let t3 = l.federation(t3).await.unwrap().unwrap();
    assert!(t3.learned);
    assert_eq!(
        (t3.state, t3.created_at),
        (crate::ledger::FederationState::Active, 5)
    );
    assert!(!l.federation(t1).await.unwrap().unwrap().learned);
    assert_eq!(l.federation(t2).await.unwrap().unwrap().pair, b);
    assert_eq!(l.import_federations(vec![]).await, Ok(Default::default()));
}

/// The counts move with every transition.
pub async fn stats_follow_transitions(l: &dyn Ledger) {
    assert_eq!(l.stats().await, Ok(LedgerStats::default()));
    let a = pair_a();
    let [reserved, active, invalid] = [id(), id(), id()];
    l.reserve_federation(reserved, &a, 1, STALE_MS)
        .await
        .unwrap();
    l.reserve_federation(active, &a, 1, STALE_MS).await.unwrap();
    l.confirm_federation(new_fed(active, &a, 2)).await.unwrap();
    l.learn_federation(new_fed(invalid, &a, 2)).await.unwrap();
    l.invalidate_federation(invalid, Withdrawal::Operator, None, 3)
        .await
        .unwrap();
    four_requests(l).await;
    let p = [event(
        "8988303000000000001",
        "valid",
        ProfileSource::CsimStatus,
    )];
    l.record_profiles(active, &p, 4).await.unwrap();
    l.record_profiles(active, &p, 5).await.unwrap();
    l.record_profiles(invalid, &p, 5).await.unwrap();
    let expected = LedgerStats {
        federations_reserved: 1,
        federations_active: 1,
        federations_invalid: 1,
        requests_pending: 1,
        requests_open: 1,
        requests_answering: 1,
        requests_closed: 1,
        profiles: 2,
    };
    assert_eq!(l.stats().await, Ok(expected.clone()));
    l.release_federation(reserved, &a).await.unwrap();
    let after = LedgerStats {
        federations_reserved: 0,
        ..expected
    };
    assert_eq!(l.stats().await, Ok(after));
}

/// Expire, abandon and purge what is due; keep everything younger than the retention.
pub async fn sweep_expires_and_purges(l: &dyn Ledger) {
    const R: u64 = 10_000;
    let a = pair_a();
    let p = |i: &str| event(i, "valid", ProfileSource::ProfileInformation);
    let [active, old_invalid, new_invalid, old_reserved, new_reserved] =
        [id(), id(), id(), id(), id()];
    for token in [active, old_invalid, new_invalid] {
        l.confirm_federation(new_fed(token, &a, 0)).await.unwrap();
    }
    l.invalidate_federation(old_invalid, Withdrawal::MspNotified, None, 1_000)
        .await
        .unwrap();
    l.invalidate_federation(new_invalid, Withdrawal::MspNotified, None, 50_000)
        .await
        .unwrap();
    l.record_profiles(
        old_invalid,
        &[p("8988303000000000001"), p("8988303000000000002")],
        1_000,
    )
    .await
    .unwrap();
    l.record_profiles(new_invalid, &[p("8988303000000000003")], 1_000)
        .await
        .unwrap();
    l.record_profiles(active, &[p("8988303000000000004")], 1_000)
        .await
        .unwrap();
    l.reserve_federation(old_reserved, &a, 1_000, STALE_MS)
        .await
        .unwrap();
    l.reserve_federation(new_reserved, &a, 50_000, STALE_MS)
        .await
        .unwrap();

    let ids: [Uuid; 7] = std::array::from_fn(|_| id());
    let [past_deadline, future_deadline, old_closed, new_closed, old_pending, old_answering, new_pending] =
        ids;
    let token = id();
    for (rid, at) in ids.iter().zip([900, 900, 900, 49_000, 1_000, 900, 50_000]) {
        l.open_request(new_req(*rid, token, &a, at)).await.unwrap();
    }
    l.settle_request(past_deadline, Settle::Async { deadline: 20_000 }, 950)
        .await
        .unwrap();
    l.settle_request(future_deadline, Settle::Async { deadline: 100_000 }, 950)
        .await
        .unwrap();
    l.settle_request(old_closed, Settle::Sync, 1_000)
        .await
        .unwrap();
    l.settle_request(new_closed, Settle::Refused { status: 500 }, 50_000)
        .await
        .unwrap();
    l.settle_request(old_answering, Settle::Async { deadline: 100_000 }, 950)
        .await
        .unwrap();
    l.claim_answer(old_answering, &a.msp, &a.cmp, token, 1_000, STALE_MS)
        .await
        .unwrap();

    let report = l.sweep(55_000, R).await.unwrap();
    let expected = SweepReport {
        expired: 1,
        abandoned: 2,
        requests_purged: 1,
        federations_purged: 1,
        reservations_dropped: 1,
        profiles_purged: 2,
    };
    assert_eq!(report, expected);
    let state = |rid| async move { l.request(rid).await.unwrap().map(|r| r.state) };
    let closed = |outcome| {
        Some(AcState::Closed {
            at: 55_000,
            outcome,
        })
    };
    assert_eq!(state(past_deadline).await, closed(Outcome::Expired));
    assert_eq!(state(old_pending).await, closed(Outcome::Abandoned));
    assert_eq!(state(old_answering).await, closed(Outcome::Abandoned));
    assert_eq!(state(old_closed).await, None);
    assert_eq!(
        state(future_deadline).await,
        Some(AcState::Open { deadline: 100_000 })
    );
    assert_eq!(state(new_pending).await, Some(AcState::Pending));
    assert!(state(new_closed).await.is_some());
    for (token, kept) in [
        (old_invalid, false),
        (old_reserved, false),
        (new_invalid, true),
        (new_reserved, true),
        (active, true),
    ] {
        assert_eq!(l.federation(token).await.unwrap().is_some(), kept);
    }
    assert_eq!(l.profiles(old_invalid).await, Ok(vec![]));
    assert_eq!(l.profiles(new_invalid).await.unwrap().len(), 1);
    assert_eq!(l.stats().await.unwrap().profiles, 2);

    // Nothing more is due at the same time; later, what was closed by the sweep goes too.
    assert_eq!(l.sweep(55_000, R).await, Ok(SweepReport::default()));
    let later = l.sweep(55_001 + R, R).await.unwrap();
    assert_eq!(
        (
            later.requests_purged,
            later.federations_purged,
            later.profiles_purged
        ),
        (4, 1, 1)
    );
    assert_eq!((later.reservations_dropped, later.abandoned), (1, 1));
    let stats = l.stats().await.unwrap();
    assert_eq!((stats.requests_closed, stats.federations_invalid), (1, 0));
    assert_eq!(
        (
            stats.requests_open,
            stats.requests_pending,
            stats.federations_active
        ),
        (1, 0, 1)
    );
}
