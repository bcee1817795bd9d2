//! TS.43 through the hub, over real TLS: the Android eSIM transfer against the real,
//! independent `ts43-test-ecs` (`flows`), and a scripted fake ECS (`fake`) for the faults and
//! contract violations the real one does not produce (`faults`) and for the per-device rate
//! limits, the admin views and `aidhub ledger transfers` (`coverage`). The test phone
//! (`device`) computes EAP-AKA with Milenage (`milenage`).

mod coverage;
mod device;
mod ecs;
mod fake;
mod faults;
mod flows;
mod milenage;
