//! The integration-test harness: the library's stage plus test helpers.
#![allow(dead_code)]

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
