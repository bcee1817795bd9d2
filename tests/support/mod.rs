//! The integration-test harness: the library's stage plus test helpers.
#![allow(dead_code)]

#[allow(unused_imports)] // not every test binary that shares these helpers stages a hub
pub use aidhub::stage::*;

/// Applies `edit` to the `[[partner]]` block of partner `id` in a routes.toml text.
pub fn edit_partner(routes: &str, id: &str, edit: impl Fn(&str) -> String) -> String {
    let marker = format!("id = \"{id}\"\n");
    let mut found = false;
    let blocks: Vec<String> = routes
        .split("[[partner]]")
        .map(|block| {
            if block.contains(&marker) {
                found = true;
                edit(block)
            } else {
                block.to_owned()
            }
        })
        .collect();
    assert!(found, "routes.toml has a [[partner]] {id}");
    blocks.join("[[partner]]")
}

/// Waits up to `within` for `child` to exit, killing it and failing the test if it does
/// not (`after`: what it should have stopped after, for the message).
pub fn wait_exit(
    child: &mut std::process::Child,
    within: std::time::Duration,
    after: &str,
) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not stop within {within:?} of {after}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
