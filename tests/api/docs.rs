//! README.md and docs/*.md checked against the code, so the docs cannot drift from it:
//! every environment variable they name is one something reads (and the configuration
//! table is exactly what `crates/services/src/config.rs` reads, with its defaults), every `boxoffice`,
//! `bench` and `scripts/...` command they show parses with the real arguments, and every
//! link between them resolves. The GraphQL examples of docs/api.md run in `readme.rs`.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use boxoffice::config::Config;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A document: its path from the repository root, and its text.
struct Doc {
    path: PathBuf,
    text: String,
}

fn read(path: impl AsRef<Path>) -> String {
    let path = Path::new(ROOT).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md and every docs/*.md.
fn docs() -> Vec<Doc> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .map(|p| p.strip_prefix(ROOT).unwrap().to_owned())
        .collect();
    paths.sort();
    paths.insert(0, PathBuf::from("README.md"));
    paths
        .into_iter()
        .map(|path| Doc {
            text: read(&path),
            path,
        })
        .collect()
}

/// A document split into what it shows as code (inline spans, and the lines of fenced and
/// indented blocks with `\` continuations joined) and its prose (for links).
struct Parts {
    code: Vec<String>,
    prose: String,
}

fn parts(text: &str) -> Parts {
    let mut code = Vec::new();
    let mut prose = String::new();
    let mut fenced = false;
    let mut indented = false;
    let mut previous_blank = true;
    let mut pending = String::new();
    for line in text.lines() {
        let blank = line.trim().is_empty();
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            prose.push('\n');
        } else if fenced || (line.starts_with("    ") && !blank && (previous_blank || indented)) {
            indented = !fenced;
            let l = if fenced { line } else { line.trim() };
            match l.strip_suffix('\\') {
                Some(head) => {
                    pending.push_str(head.trim_end());
                    pending.push(' ');
                }
                None => {
                    pending.push_str(l);
                    code.push(std::mem::take(&mut pending));
                }
            }
            prose.push('\n');
        } else {
            if !blank {
                indented = false;
            }
            prose.push_str(line);
            prose.push('\n');
        }
        previous_blank = blank;
    }
    // Inline spans may run over a line break.
    let mut plain = String::new();
    for (i, piece) in prose.split('`').enumerate() {
        if i % 2 == 1 {
            code.push(piece.replace('\n', " "));
        } else {
            plain.push_str(piece);
        }
    }
    Parts { code, prose: plain }
}

fn is_name(s: &str) -> bool {
    s.len() >= 3
        && s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The quoted string literals of Rust code, comments left out.
fn literals(code: &str) -> Vec<String> {
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .flat_map(|l| {
            l.split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What `crates/services/src/config.rs` and its parts in `config/` read (their code, not their tests
/// or comments).
fn config_rs_vars() -> BTreeSet<String> {
    let mut files = vec![PathBuf::from("crates/services/src/config.rs")];
    let dir = Path::new("crates/services/src/config");
    let parts = std::fs::read_dir(Path::new(ROOT).join(dir)).expect("crates/services/src/config/");
    for entry in parts {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".rs") {
            files.push(dir.join(name));
        }
    }
    let mut vars = BTreeSet::new();
    for file in files {
        let source = read(&file);
        let code = source.split("#[cfg(test)]").next().unwrap();
        vars.extend(literals(code).into_iter().filter(|s| is_name(s)));
    }
    assert!(
        vars.contains("DATABASE_URL") && vars.contains("WEBHOOK_TIMEOUT_MS"),
        "{vars:?}"
    );
    vars
}

/// Every variable the server binary reads: `crates/services/src/config.rs`, clap's `env = "..."` in
/// `src/main.rs`, and `RUST_LOG` when tracing reads its default variable.
fn server_vars() -> BTreeSet<String> {
    let mut vars = config_rs_vars();
    for piece in read("src/main.rs").split("env = \"").skip(1) {
        vars.insert(piece.split('"').next().unwrap().to_owned());
    }
    if read("src/telemetry.rs").contains("EnvFilter::try_from_default_env") {
        vars.insert("RUST_LOG".to_owned());
    }
    vars
}

/// Names after `marker` in `text` (`$NAME`, `${NAME`, `process.env.NAME`, ...).
fn names_after(text: &str, marker: &str, out: &mut BTreeSet<String>) {
    for piece in text.split(marker).skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if is_name(&name)
            || (name.len() >= 2 && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
        {
            out.insert(name);
        }
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == "node_modules") {
            continue;
        }
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Variables the tooling reads: the scripts and CI (`$NAME`, `${NAME`), the e2e suites
/// (`process.env.NAME`) and the bench (`var("NAME")`, `var_os("NAME")`).
fn tool_vars() -> BTreeSet<String> {
    let root = Path::new(ROOT);
    let mut files = Vec::new();
    for dir in ["scripts", ".ci", "e2e", "crates/bench/src"] {
        files_under(&root.join(dir), &mut files);
    }
    let mut vars = BTreeSet::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match file.extension().and_then(|x| x.to_str()) {
            Some("mjs" | "js") => names_after(&text, "process.env.", &mut vars),
            Some("rs") => {
                names_after(&text, "var(\"", &mut vars);
                names_after(&text, "var_os(\"", &mut vars);
            }
            Some("json") => {}
            _ => {
                names_after(&text, "${", &mut vars);
                names_after(&text, "$", &mut vars);
            }
        }
    }
    vars
}

/// Names that are not variables: the schema's enum values and the codes the server
/// writes (its upper-case string literals).
fn codes() -> BTreeSet<String> {
    let mut codes = BTreeSet::new();
    for block in read("schema.graphql").split("enum ").skip(1) {
        let body = block.split('{').nth(1).unwrap().split('}').next().unwrap();
        codes.extend(
            body.lines()
                .map(str::trim)
                .filter(|l| is_name(l))
                .map(str::to_owned),
        );
    }
    let mut files = Vec::new();
    files_under(&Path::new(ROOT).join("src"), &mut files);
    for file in files.iter().filter(|f| f.extension().is_some_and(|x| x == "rs")) {
        codes.extend(
            literals(&std::fs::read_to_string(file).unwrap())
                .into_iter()
                .filter(|s| is_name(s)),
        );
    }
    codes
}

/// The configuration table: (variable, default cell).
fn config_table() -> Vec<(String, String)> {
    read("docs/configuration.md")
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((name.to_owned(), cells.get(2)?.to_string()))
        })
        .collect()
}

#[test]
fn the_configuration_table_is_what_the_server_reads_with_its_defaults() {
    let table = config_table();
    let documented: BTreeSet<String> = table.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(documented.len(), table.len(), "a variable has two rows");
    let server = server_vars();
    let undocumented: Vec<_> = server.difference(&documented).collect();
    let unread: Vec<_> = documented.difference(&server).collect();
    assert!(
        undocumented.is_empty() && unread.is_empty(),
        "docs/configuration.md: read but not in the table: {undocumented:?}; in the table but not read: {unread:?}"
    );

    // A documented default is the value the server uses when the variable is unset:
    // setting the variable to it changes nothing.
    let config_vars = config_rs_vars();
    let unset = format!("{:?}", Config::from_lookup(|_| None));
    let mut checked = 0;
    for (name, default) in &table {
        let Some(value) = default.strip_prefix('`').and_then(|d| d.strip_suffix('`')) else {
            continue;
        };
        if value.contains('`') || !config_vars.contains(name) {
            continue;
        }
        let set = format!(
            "{:?}",
            Config::from_lookup(|n| (n == name).then(|| value.to_owned()))
        );
        assert_eq!(
            set, unset,
            "docs/configuration.md: {name}'s default is not `{value}`"
        );
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} defaults checked");

    // .env.example lists every variable of the server (create-admin's aside).
    let example: BTreeSet<String> = read(".env.example")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('=').map(|(n, _)| n.to_owned()))
        .collect();
    let mut expected = config_vars;
    expected.insert("RUST_LOG".to_owned());
    assert_eq!(
        example, expected,
        ".env.example differs from what the server reads"
    );
}

/// Variables a code fragment sets (`NAME=...`) or reads (`$NAME`, `${NAME}`).
fn vars_in(fragment: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    names_after(fragment, "$", &mut out);
    names_after(fragment, "${", &mut out);
    for word in fragment.split(|c: char| c.is_whitespace() || c == '[' || c == '(') {
        if let Some((name, _)) = word.split_once('=')
            && name.len() >= 2
            && name.starts_with(|c: char| c.is_ascii_uppercase())
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            out.insert(name.to_owned());
        }
    }
    out
}

#[test]
fn every_variable_in_the_docs_is_read_by_the_server_or_a_script() {
    let mut known = server_vars();
    known.extend(tool_vars());
    let codes = codes();
    let mut unknown = BTreeMap::<String, BTreeSet<String>>::new();
    let mut seen = 0;
    for doc in docs() {
        for fragment in parts(&doc.text).code {
            let mut names = vars_in(&fragment);
            // A span that is only a NAME_LIKE_THIS is a variable unless it is a code.
            let span = fragment.trim();
            if is_name(span) && span.contains('_') && (known.contains(span) || !codes.contains(span)) {
                names.insert(span.to_owned());
            }
            for name in names {
                seen += 1;
                if !known.contains(&name) {
                    unknown
                        .entry(doc.path.display().to_string())
                        .or_default()
                        .insert(name);
                }
            }
        }
    }
    assert!(unknown.is_empty(), "variables nothing reads: {unknown:#?}");
    assert!(seen >= 80, "only {seen} variables found in the docs");
}

/// One command a document shows: the program (`boxoffice`, `bench` or a script) and its
/// arguments, placeholders' brackets removed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Invocation {
    program: String,
    args: Vec<String>,
}

/// Shell words, with '...' and "..." quoting.
fn words(fragment: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in fragment.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, c) if c.is_whitespace() => {
                if started || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                started = false;
            }
            (None, c) => word.push(c),
        }
    }
    if started || !word.is_empty() {
        out.push(word);
    }
    out
}

fn program(word: &str) -> Option<&'static str> {
    if word.contains('=') || word.contains("://") {
        return None;
    }
    for name in ["boxoffice", "bench"] {
        let built = ["/release/", "/debug/", "$bin/"]
            .iter()
            .any(|d| word.ends_with(&format!("{d}{name}")));
        if word == name || built {
            return Some(name);
        }
    }
    None
}

/// The commands of a code fragment.
fn invocations(fragment: &str) -> Vec<Invocation> {
    let words = words(fragment);
    let args_from = |start: usize| -> Vec<String> {
        words[start.min(words.len())..]
            .iter()
            .take_while(|w| !(w.starts_with('#') || ["&", "&&", "|", ";", "...", ")"].contains(&w.as_str())))
            .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_owned())
            .filter(|w| !w.is_empty())
            .collect()
    };
    let mut out = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let word = word.trim_start_matches("./");
        if let Some(name) = program(word) {
            // `cargo run --bin bench --` names the program too: counted below.
            if i > 0 && words[i - 1] == "--bin" {
                continue;
            }
            out.push(Invocation {
                program: name.to_owned(),
                args: args_from(i + 1),
            });
        } else if word == "cargo" && words.get(i + 1).is_some_and(|w| w == "run") {
            let rest = &words[i + 2..];
            let end = rest.iter().position(|w| w == "--");
            let own = &rest[..end.unwrap_or(rest.len())];
            let bin = own
                .iter()
                .position(|w| w == "--bin")
                .map_or("boxoffice", |p| own[p + 1].as_str());
            let args = end.map(|e| args_from(i + 2 + e + 1)).unwrap_or_default();
            out.push(Invocation {
                program: bin.to_owned(),
                args,
            });
        } else if word.starts_with("scripts/") || word == ".ci/run" {
            out.push(Invocation {
                program: word.to_owned(),
                args: args_from(i + 1),
            });
        }
    }
    out
}

/// Runs `program args --help`: clap checks the subcommand, every flag and every value
/// before the help flag, and exits 0 only if all parse.
fn parses(program: &str, args: &[String]) -> Result<(), String> {
    let bin = match program {
        "boxoffice" => PathBuf::from(env!("CARGO_BIN_EXE_boxoffice")),
        // The bench is its own package (crates/bench); a workspace `cargo test` builds its
        // binary beside the server's (its own CLI test needs it) before any test runs.
        "bench" => {
            let bench = Path::new(env!("CARGO_BIN_EXE_boxoffice")).with_file_name("bench");
            if !bench.exists() {
                return Err(format!(
                    "{} is not built: run the workspace's `cargo test` (or `cargo build -p boxoffice-bench`)",
                    bench.display()
                ));
            }
            bench
        }
        other => return Err(format!("unknown program {other}")),
    };
    let out = Command::new(bin).args(args).arg("--help").output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Checks one command shown in the docs; scripts by what they pass their arguments to.
fn check(inv: &Invocation) -> Result<(), String> {
    if inv.program == "boxoffice" || inv.program == "bench" {
        return parses(&inv.program, &inv.args);
    }
    let path = Path::new(ROOT).join(&inv.program);
    let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", inv.program))?;
    if !meta.is_file() || std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 == 0 {
        return Err(format!("{} is not executable", inv.program));
    }
    let text = std::fs::read_to_string(&path).unwrap();
    if text.starts_with("#!/usr/bin/env bash") {
        let syntax = Command::new("bash").arg("-n").arg(&path).output().unwrap();
        if !syntax.status.success() {
            return Err(String::from_utf8_lossy(&syntax.stderr).into_owned());
        }
    }
    match inv.program.as_str() {
        // `exec cargo run --release --bin boxoffice -- "$@"`
        "scripts/run" => parses("boxoffice", &inv.args),
        // Every argument is a scenario; `NAME+webhook` runs NAME with --webhook.
        "scripts/bench" => inv
            .args
            .iter()
            .try_for_each(|s| match s.strip_suffix("+webhook") {
                Some(name) => parses("bench", &[name.to_owned(), "--webhook".to_owned()]),
                None => parses("bench", std::slice::from_ref(s)),
            }),
        // Its arguments go to `bench faults` (after `--ha`, through `scripts/ha failover`).
        "scripts/faults" => {
            let mut args = vec!["faults".to_owned()];
            let rest = match inv.args.split_first() {
                Some((ha, rest)) if ha == "--ha" => rest,
                _ => &inv.args[..],
            };
            args.extend(rest.iter().cloned());
            parses("bench", &args)
        }
        // A subcommand; `failover`'s further arguments go to `bench faults`.
        "scripts/ha" => match inv.args.split_first() {
            // Named alone, as in prose.
            None => Ok(()),
            Some((sub, rest)) if sub == "failover" => {
                let mut args = vec!["faults".to_owned()];
                args.extend(rest.iter().cloned());
                parses("bench", &args)
            }
            Some((sub, []))
                if ["up", "down", "status", "switchover", "kill-primary"].contains(&sub.as_str()) =>
            {
                Ok(())
            }
            // A key (its hash tag chooses the master), or none.
            Some((sub, [] | [_])) if sub == "kill-redis-master" => Ok(()),
            // Seconds, or none.
            Some((sub, rest))
                if sub == "partition-primary"
                    && rest.iter().all(|s| s.parse::<u32>().is_ok())
                    && rest.len() <= 1 =>
            {
                Ok(())
            }
            _ => Err(format!("scripts/ha {:?}: no such subcommand", inv.args)),
        },
        // cargo test's filters: anything.
        "scripts/test" => Ok(()),
        // Source folders (a shell glob among them) and --graph.
        "scripts/check-modules" => inv.args.iter().try_for_each(|a| {
            let folder = a.split('*').next().unwrap_or(a);
            if a == "--graph" || Path::new(ROOT).join(folder).is_dir() {
                Ok(())
            } else {
                Err(format!("scripts/check-modules: no folder {a}"))
            }
        }),
        "scripts/coverage" => match inv.args.as_slice() {
            [one] if one == "env" || one == "report" => Ok(()),
            other => Err(format!("scripts/coverage takes env or report, not {other:?}")),
        },
        _ if inv.args.is_empty() => Ok(()),
        other => Err(format!(
            "{other} is shown with arguments this test does not know how to check"
        )),
    }
}

#[test]
fn every_command_in_the_docs_parses() {
    let mut shown = BTreeMap::<Invocation, String>::new();
    for doc in docs() {
        for fragment in parts(&doc.text).code {
            for inv in invocations(&fragment) {
                shown.entry(inv).or_insert_with(|| doc.path.display().to_string());
            }
        }
    }
    let failures: Vec<String> = shown
        .iter()
        .filter_map(|(inv, doc)| {
            check(inv)
                .err()
                .map(|e| format!("{doc}: {} {}: {e}", inv.program, inv.args.join(" ")))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "commands that do not parse:\n{}",
        failures.join("\n")
    );
    for program in [
        "boxoffice",
        "bench",
        "scripts/run",
        "scripts/test",
        "scripts/bench",
    ] {
        assert!(
            shown.keys().any(|i| i.program == program),
            "the docs show no {program} command"
        );
    }
    assert!(shown.len() >= 15, "only {} commands found", shown.len());
}

/// GitHub's anchor of a heading.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeMap::<String, usize>::new();
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let base = slug(line.trim_start_matches('#').replace('`', "").as_str());
        let n = seen.entry(base.clone()).or_default();
        out.insert(if *n == 0 {
            base.clone()
        } else {
            format!("{base}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of `[text](target)` links in prose.
fn links(prose: &str) -> Vec<String> {
    prose
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(t, _)| t.trim().to_owned()))
        .collect()
}

#[test]
fn every_link_between_the_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in docs() {
        let dir = doc.path.parent().unwrap();
        for target in links(&parts(&doc.text).prose) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            checked += 1;
            let (file, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file_path = if file.is_empty() {
                doc.path.clone()
            } else {
                dir.join(file)
            };
            let full = Path::new(ROOT).join(&file_path);
            if !full.exists() {
                broken.push(format!("{}: {target}: no such file", doc.path.display()));
                continue;
            }
            if !anchor.is_empty() && !anchors(&std::fs::read_to_string(&full).unwrap()).contains(anchor) {
                broken.push(format!("{}: {target}: no such heading", doc.path.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked >= 20, "only {checked} links checked");
}

#[test]
fn the_readme_is_short_and_points_to_every_doc() {
    let readme = read("README.md");
    let lines = readme.lines().count();
    assert!(lines <= 300, "README.md has {lines} lines (at most 300)");
    let linked = links(&parts(&readme).prose);
    for doc in docs().iter().skip(1) {
        let path = doc.path.display().to_string();
        assert!(linked.contains(&path), "README.md does not link {path}");
    }
}

#[test]
fn the_checks_see_what_they_should() {
    // Spans across lines, indented blocks with continuations, fenced blocks.
    let p = parts(
        "a `cargo run --release --\n-- create-admin` b\n\n    scripts/bench \\\n      flash-sale\n\n```\nX=1 y\n```\n[l](x.md#y)\n",
    );
    assert!(
        p.code.contains(&"scripts/bench flash-sale".to_owned()),
        "{:?}",
        p.code
    );
    assert!(p.code.contains(&"X=1 y".to_owned()));
    assert!(
        p.code
            .contains(&"cargo run --release -- -- create-admin".to_owned())
    );
    assert_eq!(links(&p.prose), vec!["x.md#y"]);

    assert_eq!(
        invocations(
            "PORT=1 cargo run --release -- create-admin --email a --password 'x y' [--reset-password] # c"
        ),
        vec![Invocation {
            program: "boxoffice".into(),
            args: vec![
                "create-admin",
                "--email",
                "a",
                "--password",
                "x y",
                "--reset-password"
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        }]
    );
    assert_eq!(
        invocations("cargo run --release --bin bench -- flash-sale")[0].program,
        "bench"
    );
    assert_eq!(
        invocations("target/release/boxoffice serve &")[0].args,
        vec!["serve"]
    );
    assert!(invocations("postgres://postgres@127.0.0.1:5432/boxoffice").is_empty());
    assert!(invocations("boxoffice::invariants").is_empty());

    // The checks fail on what is wrong.
    assert!(parses("boxoffice", &["no-such-command".into()]).is_err());
    assert!(
        parses(
            "boxoffice",
            &["create-admin".into(), "--emial".into(), "E".into()]
        )
        .is_err()
    );
    assert!(parses("boxoffice", &["export-schema".into(), "--out".into(), "F".into()]).is_ok());
    assert!(
        check(&Invocation {
            program: "scripts/nothing".into(),
            args: vec![]
        })
        .is_err()
    );
    assert!(
        check(&Invocation {
            program: "scripts/bench".into(),
            args: vec!["flash-sail".into()]
        })
        .is_err()
    );
    assert_eq!(
        vars_in("E2E=0 scripts/test; BOXOFFICE_BIN=$CARGO_TARGET_DIR/x"),
        ["BOXOFFICE_BIN", "CARGO_TARGET_DIR", "E2E"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert_eq!(
        slug("2026-11-30 (later), issue 15: the server's CPU"),
        "2026-11-30-later-issue-15-the-servers-cpu"
    );
    assert!(!server_vars().contains("DATABASE_POOL_SIZ"));
    assert!(server_vars().contains("DATABASE_POOL_SIZE"));
}
