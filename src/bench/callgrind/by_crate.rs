//! Where a callgrind dump's instructions went, by crate: the answer to "what is left" once
//! the profile is flat, without reading a few hundred functions. Each cost line of the dump
//! is charged to the crate whose source ran it (the file of the line, `fl=` or the inlined
//! `fi=`/`fe=`). The standard library is the exception: its generic code (moves, `Vec`
//! growth, iterators, atomics) runs inlined into everybody's functions, so a line from it is
//! charged to the crate of the function it ran in (`aidhub::proxy::admit` is aidhub's), and
//! is "std" only in the library's own functions. Code of no known source (glibc's `memcpy`,
//! say) is charged to its object (`libc`); in a C program without debug information, such as
//! Debian's nginx, that is all of it: the program's own code, then each library's.
//!
//! A function named `<A as B>::f` counts as A's crate, and a cost line after `calls=` is the
//! callee's inclusive cost, not the caller's own, so it is skipped: the crates' shares add up
//! to the dump's whole count.

use std::collections::HashMap;
use std::path::Path;

/// A dump's instructions, by crate, the largest share first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByCrate {
    /// Every cost line's instructions: the dump's `totals:` (its `summary:`, which the
    /// bench's count per request reads, was 0.01% lower in VM 54's dumps).
    pub total: u64,
    /// Each crate's instructions, largest first (ties by name).
    pub crates: Vec<(String, u64)>,
}

/// Reads `dump` and charges its instructions to crates.
pub fn by_crate(dump: &Path) -> Result<ByCrate, String> {
    let text = std::fs::read_to_string(dump).map_err(|e| format!("{}: {e}", dump.display()))?;
    let exe = std::env::current_exe().ok();
    let exe = exe
        .as_deref()
        .and_then(Path::file_name)
        .and_then(|name| name.to_str())
        .unwrap_or(OWN_CRATE);
    Ok(parse(
        &text,
        &Own {
            source: OWN_SOURCE,
            exe,
        },
    ))
}

/// The directory of this crate's own source files, as the build wrote them into the binary's
/// debug information.
const OWN_SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/");

/// This crate's name, as its functions' paths begin.
const OWN_CRATE: &str = "aidhub";

/// What tells the hub's own code from the rest.
struct Own<'a> {
    /// The directory of this crate's source files ([`OWN_SOURCE`]).
    source: &'a str,
    /// The file name of the hub's executable, the bench's own (`aidhub`, or whatever a copy
    /// of it is named).
    exe: &'a str,
}

/// The line `bench --callgrind` prints for `program` (`aidhub` or `nginx`): the `top` largest
/// crates (for nginx, objects), the program's own code also as instructions per request
/// (wherever it ranks), and the rest summed.
pub fn describe(by: &ByCrate, program: &str, requests: f64, top: usize) -> String {
    let share = |n: u64| n as f64 * 100.0 / by.total.max(1) as f64;
    let mut named: Vec<String> = by
        .crates
        .iter()
        .take(top)
        .map(|(name, n)| {
            if name == program {
                format!(
                    "{name} {:.1}% ({:.0} per request)",
                    share(*n),
                    *n as f64 / requests.max(1.0)
                )
            } else {
                format!("{name} {:.1}%", share(*n))
            }
        })
        .collect();
    let rest = &by.crates[top.min(by.crates.len())..];
    if !rest.is_empty() {
        let sum: u64 = rest.iter().map(|(_, n)| n).sum();
        let (one, many) = if program == OWN_CRATE {
            ("crate", "crates")
        } else {
            ("object", "objects")
        };
        let what = if rest.len() == 1 { one } else { many };
        named.push(format!("{:.1}% in {} other {what}", share(sum), rest.len()));
    }
    let how = if program == OWN_CRATE {
        "the window's instructions by crate (whose source ran them; the standard library's \
         code inlined into a function counts as that function's crate)"
            .to_owned()
    } else {
        format!(
            "{program}'s instructions in the window by object (the program's own code, then \
             each library)"
        )
    };
    format!("   {how}: {}", named.join(", "))
}

/// The source a file path belongs to.
#[derive(Debug, PartialEq, Eq)]
enum Source<'a> {
    /// A crate's source: this one, a registry crate, or a build script's output.
    Crate(&'a str),
    /// Rust's standard library (core, alloc, std and the crates it vendors).
    Std,
    /// Not known by its path (glibc's sources, `???`).
    Unknown,
}

/// The crate a file path is the source of.
fn source_of<'a>(file: &'a str, own: &str) -> Source<'a> {
    if file.starts_with(own) {
        return Source::Crate(OWN_CRATE);
    }
    if file.starts_with("/rustc/")
        || file.starts_with("/rust/deps/")
        || file.contains("/rustlib/src/")
    {
        return Source::Std;
    }
    // ~/.cargo/registry/src/<index>/<name>-<version>/…
    if let Some((_, rest)) = file.split_once("/registry/src/") {
        if let Some(dir) = rest.split('/').nth(1) {
            return Source::Crate(name_before_version(dir));
        }
    }
    // ~/.cargo/git/checkouts/<name>-<hash>/…
    if let Some((_, rest)) = file.split_once("/git/checkouts/") {
        if let Some((name, _)) = rest.split('/').next().and_then(|d| d.rsplit_once('-')) {
            return Source::Crate(name);
        }
    }
    // target/<profile>/build/<name>-<hash>/out/… (a `-sys` crate's C sources)
    for (at, _) in file.match_indices("/build/") {
        let mut parts = file[at + "/build/".len()..].split('/');
        if let (Some(dir), Some("out")) = (parts.next(), parts.next()) {
            if let Some((name, _)) = dir.rsplit_once('-') {
                return Source::Crate(name);
            }
        }
    }
    Source::Unknown
}

/// `tikv-jemalloc-sys-0.6.1` → `tikv-jemalloc-sys`: the name ends before the first `-`
/// followed by a digit.
fn name_before_version(dir: &str) -> &str {
    let bytes = dir.as_bytes();
    (1..bytes.len())
        .find(|&i| bytes[i - 1] == b'-' && bytes[i].is_ascii_digit())
        .map_or(dir, |i| &dir[..i - 1])
}

/// The crate a function's path begins with (`<sled::ivec::IVec as …>::f` → `sled`), `None`
/// for a symbol without one (C, assembly) or a type without a crate (`<&T as …>`, `<[T] …>`).
fn function_crate(function: &str) -> Option<&str> {
    let path = function.trim_start_matches('<');
    let end = path
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(path.len());
    (end > 0 && path[end..].starts_with("::")).then(|| &path[..end])
}

/// The standard library's own crates.
fn is_std(name: &str) -> bool {
    matches!(
        name,
        "core" | "alloc" | "std" | "proc_macro" | "panic_unwind"
    )
}

/// The crate a cost line is charged to: see the module docs.
fn charge(file: &str, object: &str, function: &str, own: &Own) -> String {
    let name = match source_of(file, own.source) {
        Source::Crate(name) => name,
        Source::Std => match function_crate(function) {
            Some(name) if !is_std(name) => name,
            _ => "std",
        },
        Source::Unknown => {
            let base = object.rsplit('/').next().unwrap_or(object);
            match base.split_once(".so") {
                Some((lib, _)) => lib,
                None => match function_crate(function) {
                    Some(name) if is_std(name) => "std",
                    Some(name) => name,
                    // The hub's assembly (ring's) is not the hub's own code; another program's
                    // code without debug information is that program's (nginx's).
                    None if base == own.exe => "unknown",
                    None => base,
                },
            }
        }
    };
    // One spelling per crate: the registry's directory has `-`, a function's path `_`.
    name.replace('-', "_")
}

/// A name given by a dump's `ob=`, `fl=`, `fn=` … line: `(id) name` defines a compressed
/// name, `(id)` alone refers to one, and a bare name is itself.
fn name<'a>(rest: &'a str, names: &mut HashMap<&'a str, &'a str>) -> &'a str {
    let rest = rest.trim();
    match rest.strip_prefix('(').and_then(|r| r.split_once(')')) {
        Some((id, tail)) => {
            let tail = tail.trim_start();
            if tail.is_empty() {
                names.get(id).copied().unwrap_or("???")
            } else {
                names.insert(id, tail);
                tail
            }
        }
        None => rest,
    }
}

/// Charges every cost line of a dump's `text` to a crate; `own` is this crate's source
/// directory.
fn parse(text: &str, own: &Own) -> ByCrate {
    // Files, functions and objects each have their own compressed names; `cfi=`/`cfl=` share
    // the files', `cfn=` the functions', `cob=` the objects'.
    let mut files = HashMap::new();
    let mut functions = HashMap::new();
    let mut objects = HashMap::new();
    let mut positions = 1;
    let (mut object, mut fn_file, mut file, mut function) = ("", "", "", "");
    let mut charged: Option<String> = None;
    let mut after_call = false;
    let mut costs: HashMap<String, u64> = HashMap::new();
    for line in text.lines() {
        let Some(first) = line.bytes().next() else {
            continue;
        };
        if first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'*') {
            if std::mem::take(&mut after_call) {
                continue; // the call's inclusive cost: the callee's, charged where it ran
            }
            let cost = line
                .split_whitespace()
                .nth(positions)
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            if cost > 0 {
                let crate_name = charged
                    .get_or_insert_with(|| charge(file, object, function, own))
                    .clone();
                *costs.entry(crate_name).or_default() += cost;
            }
            continue;
        }
        let Some((key, rest)) = line.split_once('=') else {
            if let Some(kinds) = line.strip_prefix("positions:") {
                positions = kinds.split_whitespace().count().max(1);
            }
            continue;
        };
        match key {
            "ob" => object = name(rest, &mut objects),
            "fl" => {
                fn_file = name(rest, &mut files);
                file = fn_file;
            }
            "fi" | "fe" => file = name(rest, &mut files),
            "fn" => {
                function = name(rest, &mut functions);
                file = fn_file;
            }
            "cob" => {
                name(rest, &mut objects);
            }
            "cfi" | "cfl" => {
                name(rest, &mut files);
            }
            "cfn" => {
                name(rest, &mut functions);
            }
            "calls" => after_call = true,
            _ => continue,
        }
        charged = None;
    }
    let total = costs.values().sum();
    let mut crates: Vec<(String, u64)> = costs.into_iter().collect();
    crates.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ByCrate { total, crates }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: Own = Own {
        source: "/build/aidhub/src/",
        exe: "aidhub-copy",
    };

    #[test]
    fn a_path_names_its_crate() {
        let registry = "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f";
        let sled = format!("{registry}/sled-0.34.7/src/tree.rs");
        let tokio_rustls = format!("{registry}/tokio-rustls-0.26.6/src/common/mod.rs");
        let pre_release = format!("{registry}/rustls-0.23.0-alpha.1/src/conn.rs");
        for (file, expected) in [
            ("/build/aidhub/src/proxy.rs", Source::Crate("aidhub")),
            (sled.as_str(), Source::Crate("sled")),
            (tokio_rustls.as_str(), Source::Crate("tokio-rustls")),
            (pre_release.as_str(), Source::Crate("rustls")),
            (
                "/build/aidhub/target/release/build/tikv-jemalloc-sys-382de1747d8ab32e/out/build/src/jemalloc.c",
                Source::Crate("tikv-jemalloc-sys"),
            ),
            (
                "/root/.cargo/git/checkouts/quinn-0c34a1b2/abc/src/lib.rs",
                Source::Crate("quinn"),
            ),
            ("/rustc/59807616e1fa/library/core/src/ptr/mod.rs", Source::Std),
            ("/rust/deps/hashbrown-0.16.1/src/raw/mod.rs", Source::Std),
            ("./string/../sysdeps/x86_64/multiarch/memmove.S", Source::Unknown),
            ("???", Source::Unknown),
        ] {
            assert_eq!(source_of(file, OWN.source), expected, "{file}");
        }
    }

    #[test]
    fn the_standard_librarys_code_counts_for_the_function_it_ran_in() {
        let std_file = "/rustc/5980/library/alloc/src/vec/mod.rs";
        let exe = "/tmp/b/aidhub-copy";
        for (function, expected) in [
            ("aidhub::proxy::admit::{{closure}}", "aidhub"),
            (
                "<sled::ivec::IVec as sled::serialization::Serialize>::serialize_into",
                "sled",
            ),
            (
                "<futures_util::future::CatchUnwind<Fut> as core::future::Future>::poll",
                "futures_util",
            ),
            ("<alloc::vec::Vec<T,A> as core::clone::Clone>::clone", "std"),
            ("<&T as core::fmt::Display>::fmt", "std"),
        ] {
            assert_eq!(
                charge(std_file, exe, function, &OWN),
                expected,
                "{function}"
            );
        }
        // A crate's own file decides, whatever function it was inlined into.
        let sled_file = "/r/.cargo/registry/src/index/sled-0.34.7/src/node.rs";
        assert_eq!(charge(sled_file, exe, "aidhub::ledger::x", &OWN), "sled");
        // No known source: the object, or the function's crate in the executable.
        let libc = "/usr/lib/x86_64-linux-gnu/libc.so.6";
        assert_eq!(
            charge("./string/memmove.S", libc, "__memcpy_avx", &OWN),
            "libc"
        );
        assert_eq!(charge("???", exe, "hyper::proto::h1::parse", &OWN), "hyper");
        assert_eq!(charge("???", exe, "core::ptr::drop_in_place", &OWN), "std");
        assert_eq!(charge("???", exe, "_start", &OWN), "unknown");
        // A C program without debug information: its own code, then each library's.
        let nginx = "/usr/sbin/nginx";
        assert_eq!(
            charge("???", nginx, "ngx_http_proxy_handler", &OWN),
            "nginx"
        );
        let libcrypto = "/usr/lib/x86_64-linux-gnu/libcrypto.so.3";
        assert_eq!(
            charge("???", libcrypto, "EVP_DecryptUpdate", &OWN),
            "libcrypto"
        );
    }

    /// A dump as callgrind writes it: compressed names, a function with inlined lines, a call
    /// whose inclusive cost must not count for its caller, relative positions.
    #[test]
    fn a_dump_is_charged_line_by_line_and_adds_up() {
        let dump = "\
# callgrind format
version: 1
positions: line
events: Ir
summary: 900

ob=(1) /usr/lib/x86_64-linux-gnu/libc.so.6
fl=(1) ./string/../sysdeps/x86_64/memmove.S
fn=(1) __memcpy_avx_unaligned_erms
10 100

ob=(2) /tmp/b/aidhub
fl=(2) /build/aidhub/src/proxy.rs
fn=(2) aidhub::proxy::admit::{{closure}}
5 200
fi=(3) /rustc/abc/library/core/src/ptr/mod.rs
+1 50
fe=(2)
+2 30
cob=(1)
cfi=(1)
cfn=(1)
calls=3 10
-1 100
* 20
fl=(4) /r/.cargo/registry/src/index/sled-0.34.7/src/tree.rs
fn=(3) sled::tree::Tree::insert
7 300
fi=(3)
8 150
fl=(2)
fn=(2)
9 50

totals: 900
";
        let by = parse(dump, &OWN);
        assert_eq!(by.total, 900, "{by:?}");
        assert_eq!(
            by.crates,
            vec![
                ("sled".to_owned(), 450),
                ("aidhub".to_owned(), 350),
                ("libc".to_owned(), 100),
            ]
        );
        let line = describe(&by, "aidhub", 10.0, 2);
        assert!(
            line.ends_with("sled 50.0%, aidhub 38.9% (35 per request), 11.1% in 1 other crate"),
            "{line}"
        );
    }

    #[test]
    fn a_dump_with_two_position_columns_reads_the_cost_after_both() {
        let dump = "positions: instr line\nevents: Ir\nfl=(1) /build/aidhub/src/a.rs\nfn=(1) aidhub::a\n0x10 3 7\n+2 +1 5\n";
        let by = parse(dump, &OWN);
        assert_eq!(by.crates, vec![("aidhub".to_owned(), 12)]);
    }

    /// nginx has no debug information: its instructions go to its own code and each library,
    /// and the program's own code is given per request.
    #[test]
    fn a_c_programs_dump_is_charged_by_object() {
        let dump = "events: Ir\n\
                    ob=(1) /usr/sbin/nginx\nfl=(1) ???\nfn=(1) ngx_epoll_process_events\n0 400\n\
                    ob=(2) /usr/lib/x86_64-linux-gnu/libcrypto.so.3\nfn=(2) aesni_gcm_encrypt\n\
                    0 800\n";
        let by = parse(dump, &OWN);
        assert_eq!(by.total, 1_200);
        assert_eq!(
            by.crates,
            vec![("libcrypto".to_owned(), 800), ("nginx".to_owned(), 400)]
        );
        let line = describe(&by, "nginx", 100.0, 1);
        assert!(
            line.starts_with("   nginx's instructions in the window by object"),
            "{line}"
        );
        assert!(
            line.ends_with(": libcrypto 66.7%, 33.3% in 1 other object"),
            "{line}"
        );
        let line = describe(&by, "nginx", 100.0, 2);
        assert!(line.ends_with("nginx 33.3% (4 per request)"), "{line}");
    }
}
