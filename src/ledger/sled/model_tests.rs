//! Model-based test: random operation sequences applied to [`SledLedger`] and to
//! [`MemoryLedger`] (the model) must give the same answers and leave the same records and
//! counts, across restarts of the sled database. After sled 0.34's
//! `prop_tree_matches_btreemap`, with a small deterministic PRNG instead of a crate.
//!
//! The pools of tokens, request ids, pairs and ICCIDs are small so that operations
//! collide: retries, conflicts, stale takeovers and wrong states all come up.

use uuid::Uuid;

use super::tests::{dump, TestDir};
use super::SledLedger;
use crate::ledger::{
    Delivered, Ledger, MemoryLedger, NewAcRequest, NewFederation, Pair, ProfileEvent,
    ProfileSource, RequestFilter, Settle, Withdrawal,
};

const STALE_MS: u64 = 1_000;
const RETENTION_MS: u64 = 5_000;

/// SplitMix64: small, fast, good enough to pick test operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The fixed pools operations draw from.
struct Pools {
    tokens: Vec<Uuid>,
    requests: Vec<Uuid>,
    pairs: Vec<Pair>,
    iccids: Vec<String>,
}

impl Pools {
    fn new() -> Pools {
        Pools {
            tokens: (1..=6).map(Uuid::from_u128).collect(),
            requests: (101..=108).map(Uuid::from_u128).collect(),
            pairs: vec![
                Pair::new("m1", "c1"),
                Pair::new("m1", "c2"),
                Pair::new("m2", "c1"),
            ],
            iccids: (1..=3).map(|i| format!("898830300000000000{i}")).collect(),
        }
    }
}

/// One random operation.
#[derive(Debug, Clone)]
enum Op {
    Reserve(Uuid, Pair),
    Confirm(NewFederation),
    Release(Uuid, Pair),
    Learn(NewFederation),
    Invalidate(Uuid, Withdrawal, Option<String>),
    Open(NewAcRequest),
    Settle(Uuid, Settle),
    Claim(Uuid, Pair, Uuid),
    Finish(Uuid, Option<Delivered>),
    Profiles(Uuid, Vec<ProfileEvent>),
    Import(Vec<NewFederation>),
    Sweep,
    List(RequestFilter),
    Read(Uuid),
    Restart,
}

async fn gen_op(rng: &mut Rng, pools: &Pools, model: &MemoryLedger, now: u64) -> Op {
    let token = rng.pick(&pools.tokens);
    let mut pair = rng.pick(&pools.pairs);
    // Steer towards records that exist, so that sequences go deep rather than wide.
    let known = model
        .list_requests(&RequestFilter::default())
        .await
        .unwrap();
    let rid = match known.is_empty() || rng.chance(25) {
        true => rng.pick(&pools.requests),
        false => rng.pick(&known).id,
    };
    if let Some(fed) = model.federation(token).await.unwrap() {
        if rng.chance(60) {
            pair = fed.pair;
        }
    }
    let fed = |rng: &mut Rng| NewFederation {
        msp_token: rng.pick(&pools.tokens),
        pair: rng.pick(&pools.pairs),
        sid: rng.chance(50).then(|| Uuid::from_u128(rng.below(3).into())),
        subscription_type: rng.chance(50).then(|| "business".to_string()),
        at: now,
    };
    match rng.below(100) {
        0..=9 => Op::Reserve(token, pair),
        10..=16 => Op::Confirm(fed(rng)),
        17..=19 => Op::Release(token, pair),
        20..=22 => Op::Learn(fed(rng)),
        23..=24 => Op::Invalidate(
            token,
            rng.pick(&[Withdrawal::MspNotified, Withdrawal::Operator]),
            None,
        ),
        25..=36 => Op::Open(NewAcRequest {
            id: rid,
            msp_token: token,
            pair,
            at: now,
        }),
        37..=48 => {
            let deadline = now + 200 + rng.below(3_000);
            let settles = [
                Settle::Async { deadline },
                Settle::Sync,
                Settle::Refused { status: 404 },
                Settle::Abandoned,
            ];
            let s = if rng.chance(70) {
                settles[0]
            } else {
                rng.pick(&settles)
            };
            Op::Settle(rid, s)
        }
        49..=64 => {
            // Mostly the request's real sender, so that claims get past the checks.
            match model.request(rid).await.unwrap() {
                Some(req) if rng.chance(85) => Op::Claim(rid, req.pair, req.msp_token),
                _ => Op::Claim(rid, pair, token),
            }
        }
        65..=76 => Op::Finish(
            rid,
            rng.pick(&[None, Some(Delivered::Code), Some(Delivered::Error)]),
        ),
        77..=82 => {
            let events = (0..=rng.below(3))
                .map(|_| ProfileEvent {
                    iccid: rng.pick(&pools.iccids),
                    status: rng.pick(&["valid".to_string(), "deleted".to_string()]),
                    source: rng.pick(&[ProfileSource::CsimStatus, ProfileSource::Swapped]),
                })
                .collect();
            Op::Profiles(token, events)
        }
        83..=84 => Op::Import((0..=rng.below(3)).map(|_| fed(rng)).collect()),
        85..=87 => Op::Sweep,
        88..=90 => Op::List(RequestFilter {
            open_only: rng.chance(50),
            partner: rng
                .chance(50)
                .then(|| rng.pick(&["m1".to_string(), "c1".to_string()])),
            older_than_ms: rng.chance(50).then(|| rng.below(3_000)),
            now,
            limit: rng.chance(50).then(|| rng.below(4) as usize),
        }),
        91..=96 => Op::Read(if rng.chance(50) { token } else { rid }),
        _ => Op::Restart,
    }
}

/// Apply `op` to `l`; the answer, printed for comparison.
async fn apply(l: &dyn Ledger, op: &Op, now: u64) -> String {
    match op.clone() {
        Op::Reserve(t, p) => format!("{:?}", l.reserve_federation(t, &p, now, STALE_MS).await),
        Op::Confirm(f) => format!("{:?}", l.confirm_federation(f).await),
        Op::Release(t, p) => format!("{:?}", l.release_federation(t, &p).await),
        Op::Learn(f) => format!("{:?}", l.learn_federation(f).await),
        Op::Invalidate(t, by, why) => {
            format!("{:?}", l.invalidate_federation(t, by, why, now).await)
        }
        Op::Open(r) => format!("{:?}", l.open_request(r).await),
        Op::Settle(r, s) => format!("{:?}", l.settle_request(r, s, now).await),
        Op::Claim(r, p, t) => {
            format!(
                "{:?}",
                l.claim_answer(r, &p.msp, &p.cmp, t, now, STALE_MS).await
            )
        }
        Op::Finish(r, d) => format!("{:?}", l.finish_answer(r, d, now).await),
        Op::Profiles(t, events) => {
            let recorded = l.record_profiles(t, &events, now).await;
            format!("{recorded:?} {:?}", l.profiles(t).await)
        }
        Op::Import(lines) => format!("{:?}", l.import_federations(lines).await),
        Op::Sweep => format!("{:?}", l.sweep(now, RETENTION_MS).await),
        Op::List(filter) => format!("{:?}", l.list_requests(&filter).await),
        Op::Read(id) => format!("{:?} {:?}", l.federation(id).await, l.request(id).await),
        Op::Restart => String::new(),
    }
}

async fn assert_same_records(sled: &SledLedger, model: &MemoryLedger, context: &str) {
    assert_eq!(
        dump(sled).await,
        dump(model).await,
        "records differ {context}"
    );
    assert_eq!(
        sled.stats().await,
        model.stats().await,
        "stats differ {context}"
    );
}

/// Run one sequence; every answer is added to `seen`.
async fn run_seed(seed: u64, steps: usize, seen: &mut Vec<String>) {
    let dir = TestDir::new("model");
    let mut sled = SledLedger::open(dir.path()).unwrap();
    let model = MemoryLedger::new();
    let (mut rng, pools) = (Rng(seed), Pools::new());
    let mut now = 1_000;
    for step in 0..steps {
        // Mostly small steps (retries, busy claims), sometimes long ones (expiry, retention).
        now += if rng.chance(10) {
            rng.below(4_000)
        } else {
            rng.below(100)
        };
        let op = gen_op(&mut rng, &pools, &model, now).await;
        let context = format!("at seed {seed} step {step}: {op:?}");
        if let Op::Restart = op {
            drop(sled);
            sled = SledLedger::open(dir.path()).unwrap();
            assert_same_records(&sled, &model, &context).await;
            seen.push("Restart".into());
            continue;
        }
        let expected = apply(&model, &op, now).await;
        let got = apply(&sled, &op, now).await;
        assert_eq!(got, expected, "answers differ {context}");
        seen.push(got);
        if step % 20 == 0 {
            assert_same_records(&sled, &model, &context).await;
        }
    }
    drop(sled);
    let sled = SledLedger::open(dir.path()).unwrap();
    assert_same_records(&sled, &model, &format!("after seed {seed}")).await;
}

#[tokio::test]
async fn sled_matches_the_model_across_restarts() {
    let mut seen = Vec::new();
    for seed in 0..16 {
        run_seed(seed, 400, &mut seen).await;
    }
    // The generator must reach the interesting corners, or the comparison proves little.
    let corners = [
        "Restart",
        "Reserved",
        "learned: true",
        "Invalid",
        "Answering",
        "Expired",
        "Abandoned",
        "AnsweredWithError",
        "Refused",
        "TokenTaken",
        "TokenWithdrawn",
        "NotFound",
        "DuplicateRequest",
        "UnknownRequest",
        "RequestClosed",
        "RequestPending",
        "RequestBusy",
        "Mismatch",
        "WrongState",
        "requests_purged: 1",
        "federations_purged: 1",
        "reservations_dropped: 1",
        "profiles_purged: 1",
        "conflicting: [0",
    ];
    for corner in corners {
        let hits = seen.iter().filter(|answer| answer.contains(corner)).count();
        assert!(hits > 0, "no answer mentions {corner}");
    }
}
