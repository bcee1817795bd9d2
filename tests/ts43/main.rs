//! TS.43 through the hub, over real TLS: the Android eSIM transfer against the real,
//! independent `ts43-test-ecs` (`flows`), and a scripted fake ECS for the faults and
//! contract violations the real one does not produce (`faults`). The test phone
//! (`device`) computes EAP-AKA with Milenage (`milenage`).

mod device;
mod ecs;
mod faults;
mod flows;
mod milenage;
