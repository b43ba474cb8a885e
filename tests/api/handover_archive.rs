//! `wallet-server handover verify | import | export` with bundles packed as `.tar`, `.tar.gz`
//! and `.tgz`: a good archive reads as its directory does; an archive that could write outside
//! the bundle (`..`, links, absolute paths) or holds anything but the four bundle files is
//! refused naming the entry, the database and the temporary directory left as they were.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::handover::import::{snapshot, status};
use crate::handover::BundleFiles;
use crate::support::{Backend, TestApp};

/// The bundle files, in the order the exporter packs them.
const BUNDLE_FILES: [&str; 4] = ["manifest.json", "citizens.csv", "merchants.csv", "transactions.csv"];

/// One entry of an archive built here. Names are written into the header as they are, so an
/// archive can hold what a careful packer would refuse to write (`..`, absolute paths).
enum Entry {
    File(String, Vec<u8>),
    /// A regular file whose header claims `size` bytes, none of which follow (the archive ends).
    FileClaiming(String, u64),
    Directory(String),
    Symlink(String, String),
    HardLink(String, String),
}

fn header(name: &str, entry_type: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    let bytes = name.as_bytes();
    header.as_gnu_mut().expect("a GNU header").name[..bytes.len()].copy_from_slice(bytes);
    header.set_entry_type(entry_type);
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header
}

fn link_header(name: &str, entry_type: tar::EntryType, target: &str) -> tar::Header {
    let mut header = header(name, entry_type, 0);
    let bytes = target.as_bytes();
    header.as_gnu_mut().expect("a GNU header").linkname[..bytes.len()].copy_from_slice(bytes);
    header
}

/// The entries as a tar stream.
fn tar_bytes(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let (mut header, data): (tar::Header, &[u8]) = match entry {
            Entry::File(name, data) => (header(name, tar::EntryType::Regular, data.len() as u64), data),
            Entry::FileClaiming(name, size) => (header(name, tar::EntryType::Regular, *size), &[]),
            Entry::Directory(name) => (header(name, tar::EntryType::Directory, 0), &[]),
            Entry::Symlink(name, target) => (link_header(name, tar::EntryType::Symlink, target), &[]),
            Entry::HardLink(name, target) => (link_header(name, tar::EntryType::Link, target), &[]),
        };
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
        if matches!(entry, Entry::FileClaiming(..)) {
            return out;
        }
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

/// Writes the entries as an archive at `path`, gzipped or not.
fn pack(path: &Path, entries: &[Entry], gzip: bool) {
    let tar = tar_bytes(entries);
    let bytes = if gzip {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        encoder.write_all(&tar).expect("gzip in memory");
        encoder.finish().expect("gzip in memory")
    } else {
        tar
    };
    std::fs::write(path, bytes).expect("write the archive");
}

/// The bundle's four files as archive entries, under `directory/` (with its directory entry)
/// unless `directory` is empty.
fn bundle_entries(files: &BundleFiles, directory: &str) -> Vec<Entry> {
    let dir = tempfile::tempdir().expect("temporary directory");
    files.write(dir.path());
    let mut entries = Vec::new();
    if !directory.is_empty() {
        entries.push(Entry::Directory(format!("{directory}/")));
    }
    for name in BUNDLE_FILES {
        let bytes = std::fs::read(dir.path().join(name)).expect("read a bundle file");
        let name = if directory.is_empty() { name.to_owned() } else { format!("{directory}/{name}") };
        entries.push(Entry::File(name, bytes));
    }
    entries
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list a directory")
        .map(|entry| entry.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A place for an archive and a TMPDIR of its own, to see what unpacking leaves behind.
struct Workspace {
    root: tempfile::TempDir,
}

impl Workspace {
    fn new() -> Workspace {
        let root = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(root.path().join("tmp")).expect("create the TMPDIR");
        Workspace { root }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn tmp(&self) -> PathBuf {
        self.path("tmp")
    }

    /// Runs `wallet-server handover verify <archive>` with TMPDIR here: (success, stdout, stderr).
    fn verify(&self, archive: &Path) -> (bool, String, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_wallet-server"))
            .args(["handover", "verify"])
            .arg(archive)
            .env("WALLET_DATABASE_URL", self.path("unused.sqlite3"))
            .env("TMPDIR", self.tmp())
            .output()
            .expect("run wallet-server handover verify");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into(),
            String::from_utf8_lossy(&output.stderr).into(),
        )
    }

    /// Nothing is left in TMPDIR (the unpacked bundle is removed), and nothing landed beside it.
    #[track_caller]
    fn assert_clean(&self) {
        assert_eq!(listing(&self.tmp()), Vec::<String>::new(), "the unpacked bundle was left in TMPDIR");
        assert!(!self.path("evil.csv").exists() && !self.tmp().join("evil.csv").exists(), "an entry escaped");
    }
}

#[test]
fn a_tar_gz_and_a_tar_verify_as_their_directory_does() {
    let work = Workspace::new();
    let good = BundleFiles::good();
    let cases = [
        // Files at the top level, gzipped.
        ("bundle.tar.gz", bundle_entries(&good, ""), true),
        // Under one directory, as `tar -cf x.tar bundle-0001` writes it.
        ("bundle.tar", bundle_entries(&good, "bundle-0001"), false),
        // `tar -C dir -czf x.tgz .`: the root and `./` names.
        ("bundle.tgz", with_dot_prefix(bundle_entries(&good, "")), true),
        // Told by content, not by name.
        ("bundle.bin", bundle_entries(&good, "b"), true),
    ];
    for (name, entries, gzip) in cases {
        let archive = work.path(name);
        pack(&archive, &entries, gzip);
        let (ok, stdout, stderr) = work.verify(&archive);
        assert!(ok, "{name}: {stderr}");
        assert!(stdout.contains("citizens 2, merchants 1, transactions 8"), "{name}: {stdout}");
        assert!(stdout.contains("citizen balances 42000 won, merchant receivables 5000 won"), "{name}: {stdout}");
        work.assert_clean();
    }

    // The unpacked files are verified as a directory's are: a changed file fails its checksum.
    let mut entries = bundle_entries(&good, "");
    if let Entry::File(_, bytes) = &mut entries[2] {
        *bytes = String::from_utf8(bytes.clone()).expect("UTF-8").replace(",5000\n", ",5001\n").into_bytes();
    }
    let archive = work.path("changed.tar.gz");
    pack(&archive, &entries, true);
    let (ok, stdout, stderr) = work.verify(&archive);
    assert!(!ok, "a changed file was accepted: {stdout}");
    assert!(stderr.contains("merchants.csv: its SHA-256 is"), "{stderr}");
    work.assert_clean();
}

/// `handover verify` whose stdout and stderr readers have gone (`... | head -0`): it did its work
/// and then panicked writing its summary (exit code 101). Now the summary is dropped and the exit
/// code is the verification's: 0 for a good bundle, 1 for a refused one.
#[test]
fn a_closed_pipe_does_not_crash_a_handover_command() {
    let work = Workspace::new();
    let good = BundleFiles::good();
    let archive = work.path("bundle.tar.gz");
    pack(&archive, &bundle_entries(&good, ""), true);
    let mut changed = bundle_entries(&good, "");
    if let Entry::File(_, bytes) = &mut changed[2] {
        bytes.push(b'x');
    }
    let refused = work.path("refused.tar.gz");
    pack(&refused, &changed, true);
    for (bundle, expected) in [(&archive, Some(0)), (&refused, Some(1))] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wallet-server"))
            .args(["handover", "verify"])
            .arg(bundle)
            .env("WALLET_DATABASE_URL", work.path("unused.sqlite3"))
            .env("TMPDIR", work.tmp())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run wallet-server handover verify");
        // Both readers close before the command has written anything.
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().expect("wait for wallet-server");
        assert_eq!(status.code(), expected, "{}: {status}", bundle.display());
        work.assert_clean();
    }
}

/// An archive large enough that unpacking it takes a while: a manifest and a 512 MiB
/// `citizens.csv` of one repeated line (a few hundred KiB gzipped). It is not a valid bundle;
/// the signals reach the command while it unpacks or reads it.
fn slow_archive(work: &Workspace) -> PathBuf {
    let archive = work.path("slow.tar.gz");
    let file = std::fs::File::create(&archive).expect("create the archive");
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(file, flate2::Compression::fast()));
    let manifest = b"{}";
    builder
        .append_data(&mut header("manifest.json", tar::EntryType::Regular, 2), "manifest.json", &manifest[..])
        .expect("append");
    let size = 512u64 << 20;
    let line = b"C-1,citizen,,W-1,0,2026-11,0,0,2025-03-02T09:00:00+09:00\n";
    let body = std::io::Read::take(RepeatLine { line, at: 0 }, size);
    builder
        .append_data(&mut header("citizens.csv", tar::EntryType::Regular, size), "citizens.csv", body)
        .expect("append");
    builder.into_inner().expect("tar").finish().expect("gzip");
    archive
}

/// One line, repeated without end (`std::io::repeat` repeats a byte).
struct RepeatLine {
    line: &'static [u8],
    at: usize,
}

impl std::io::Read for RepeatLine {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        for byte in buffer.iter_mut() {
            *byte = self.line[self.at];
            self.at = (self.at + 1) % self.line.len();
        }
        Ok(buffer.len())
    }
}

/// Starts `handover verify <archive>` with TMPDIR here and waits until its unpacking directory
/// exists; returns the running command and that directory.
fn verify_until_unpacking(work: &Workspace, archive: &Path) -> (std::process::Child, PathBuf) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wallet-server"))
        .args(["handover", "verify"])
        .arg(archive)
        .env("WALLET_DATABASE_URL", work.path("unused.sqlite3"))
        .env("TMPDIR", work.tmp())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run wallet-server handover verify");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(name) = listing(&work.tmp()).into_iter().find(|name| name.starts_with("wallet-handover-")) {
            return (child, work.tmp().join(name));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("no unpacking directory appeared");
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

fn send_signal(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("run kill");
    assert!(sent.success(), "kill {signal} failed");
}

/// Ctrl-C or SIGTERM while an archive is unpacked: the unpacked copy (password hashes and all)
/// was left in TMPDIR. Now the command removes it and ends as the signal asks (128 + signal).
#[test]
fn an_interrupted_unpacking_leaves_nothing_behind() {
    let work = Workspace::new();
    let archive = slow_archive(&work);
    for (signal, code) in [("-TERM", 143), ("-INT", 130)] {
        let (mut child, _) = verify_until_unpacking(&work, &archive);
        send_signal(&child, signal);
        let status = child.wait().expect("wait for wallet-server");
        assert_eq!(status.code(), Some(code), "{signal}: {status}");
        work.assert_clean();
    }
}

/// SIGKILL cannot be caught: what a killed command unpacked stays, and the next command that
/// unpacks (the re-run) removes it. A directory of a command still running is left alone.
#[test]
fn what_a_killed_unpacking_left_is_removed_by_the_next_run() {
    let work = Workspace::new();
    let archive = slow_archive(&work);
    let (mut killed, left) = verify_until_unpacking(&work, &archive);
    send_signal(&killed, "-KILL");
    killed.wait().expect("wait for wallet-server");
    assert!(left.is_dir(), "SIGKILL left nothing: this test no longer shows what it is for");
    let running = work.tmp().join(format!("wallet-handover-{}-Xy12", std::process::id()));
    std::fs::create_dir(&running).expect("create");

    let good = work.path("good.tar.gz");
    pack(&good, &bundle_entries(&BundleFiles::good(), ""), true);
    let (ok, _, stderr) = work.verify(&good);
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains(&format!("removed {}, left behind by an earlier run that was killed", left.display())),
        "{stderr}"
    );
    assert!(!left.exists(), "the killed run's directory is still there");
    std::fs::remove_dir(&running).expect("a running command's directory was removed");
    work.assert_clean();
}

fn with_dot_prefix(entries: Vec<Entry>) -> Vec<Entry> {
    let mut dotted = vec![Entry::Directory("./".to_owned())];
    for entry in entries {
        if let Entry::File(name, bytes) = entry {
            dotted.push(Entry::File(format!("./{name}"), bytes));
        }
    }
    dotted
}

#[test]
fn archives_holding_anything_but_the_bundle_files_are_refused_naming_the_entry() {
    let work = Workspace::new();
    let good = || bundle_entries(&BundleFiles::good(), "");
    let with = |extra: Entry| {
        let mut entries = good();
        entries.push(extra);
        entries
    };
    let replacing = |index: usize, entry: Entry| {
        let mut entries = good();
        entries[index] = entry;
        entries
    };
    let cases: Vec<(&str, Vec<Entry>, &str)> = vec![
        (
            "dotdot",
            with(Entry::File("../evil.csv".into(), b"x\n".to_vec())),
            "entry \"../evil.csv\" has a '..' component",
        ),
        (
            "symlink",
            replacing(1, Entry::Symlink("citizens.csv".into(), "/etc/passwd".into())),
            "entry \"citizens.csv\" is a symbolic link",
        ),
        (
            "hardlink",
            replacing(2, Entry::HardLink("merchants.csv".into(), "citizens.csv".into())),
            "entry \"merchants.csv\" is a hard link",
        ),
        (
            "absolute",
            with(Entry::File("/tmp/evil.csv".into(), b"x\n".to_vec())),
            "entry \"/tmp/evil.csv\" has an absolute path",
        ),
        ("other", with(Entry::File("notes.txt".into(), b"hi\n".to_vec())), "entry \"notes.txt\" is not a bundle file"),
        (
            "duplicate",
            with(Entry::File("citizens.csv".into(), b"x\n".to_vec())),
            "entry \"citizens.csv\" appears twice",
        ),
        (
            "two-places",
            replacing(0, Entry::File("b/manifest.json".into(), b"{}".to_vec())),
            "entry \"citizens.csv\" is not where the first entries are (under the directory \"b\")",
        ),
        (
            "nested",
            with(Entry::File("a/b/manifest.json".into(), b"{}".to_vec())),
            "entry \"a/b/manifest.json\" is nested more than one directory deep",
        ),
        (
            "too-big",
            replacing(3, Entry::FileClaiming("transactions.csv".into(), 65 << 30)),
            "entry \"transactions.csv\" (69793218560 bytes) takes the archive past 68719476736 bytes unpacked",
        ),
    ];
    for (name, entries, expected) in cases {
        let archive = work.path(&format!("{name}.tar.gz"));
        pack(&archive, &entries, true);
        let (ok, stdout, stderr) = work.verify(&archive);
        assert!(!ok, "{name}: the archive was accepted: {stdout}");
        assert!(stderr.contains(expected), "{name}: expected {expected:?} in the refusal, got: {stderr}");
        // And it says what to do.
        assert!(stderr.contains("repack it so") || stderr.contains("as a directory instead"), "{name}: {stderr}");
        work.assert_clean();
    }

    let mut entries = good();
    entries.pop();
    let archive = work.path("incomplete.tar");
    pack(&archive, &entries, false);
    let (ok, _, stderr) = work.verify(&archive);
    assert!(!ok && stderr.contains("holds no transactions.csv"), "{stderr}");
    work.assert_clean();

    // Named like a gzip, but it is not one: said so rather than read as something else.
    let archive = work.path("not-gzip.tar.gz");
    std::fs::write(&archive, b"citizen_id,login\n").expect("write");
    let (ok, _, stderr) = work.verify(&archive);
    assert!(!ok && stderr.contains("does not start with the gzip magic bytes 1f 8b"), "{stderr}");
}

mod import {
    //! `handover import` of archives and `handover export` to archives, on each backend.

    use super::*;

    /// Runs `wallet-server handover import <archive>`: (success, stdout and stderr).
    fn import(app: &TestApp, archive: &Path) -> (bool, String) {
        let output = app.server.run(&["handover", "import", archive.to_str().expect("UTF-8 path")]);
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    }

    fn a_tar_gz_imports_as_its_directory_does(backend: Backend) {
        let work = Workspace::new();
        let tmp = work.tmp();
        let app = TestApp::start_with(backend, &[("TMPDIR", tmp.to_str().expect("UTF-8 path"))]);
        let archive = work.path("snapshot.tar.gz");
        pack(&archive, &bundle_entries(&snapshot(), "bundle-0001"), true);
        let (ok, text) = import(&app, &archive);
        assert!(ok, "{text}");
        assert!(text.contains("applied snapshot 0"), "{text}");
        work.assert_clean();
        let status = status(&app);
        assert!(status.contains("last applied: snapshot 0"), "{status}");
        assert!(status.contains("handover account balance in the ledger: -1090000 won"), "{status}");
        let citizen = app.api.login("citizen1", "old-pass-argon2id");
        assert_eq!(app.api.balance(&citizen), "30000");
        // The same archive again changes nothing.
        let (ok, text) = import(&app, &archive);
        assert!(ok && text.contains("already applied; nothing changed"), "{text}");
        app.assert_books_balance();
    }

    fn a_refused_archive_leaves_the_database_unchanged(backend: Backend) {
        let work = Workspace::new();
        let tmp = work.tmp();
        let app = TestApp::start_with(backend, &[("TMPDIR", tmp.to_str().expect("UTF-8 path"))]);
        // A good bundle, plus an entry that would land beside the unpacked directory.
        let mut escaping = bundle_entries(&snapshot(), "");
        escaping.push(Entry::File("../evil.csv".into(), b"x\n".to_vec()));
        // A good bundle whose transactions.csv is a link to a file elsewhere.
        let mut linked = bundle_entries(&snapshot(), "");
        linked[3] = Entry::Symlink("transactions.csv".into(), "../../transactions.csv".into());
        for (name, entries, expected) in [
            ("escaping.tar.gz", escaping, "entry \"../evil.csv\" has a '..' component"),
            ("linked.tar", linked, "entry \"transactions.csv\" is a symbolic link"),
        ] {
            let archive = work.path(name);
            pack(&archive, &entries, name.ends_with(".gz"));
            let (ok, text) = import(&app, &archive);
            assert!(!ok, "{name} was imported: {text}");
            assert!(text.contains(expected), "{name}: expected {expected:?}, got: {text}");
            work.assert_clean();
            let status = status(&app);
            assert!(status.contains("no handover bundle has been applied"), "{name}: {status}");
            app.api
                .post("/v1/sessions", "", &json!({"login": "citizen1", "password": "old-pass-argon2id"}), &[])
                .expect_error(401, "invalid_credentials");
        }
        app.assert_books_balance();
    }

    fn an_export_to_a_tar_gz_or_a_tar_verifies(backend: Backend) {
        let work = Workspace::new();
        let tmp = work.tmp();
        let app = TestApp::start_with(backend, &[("TMPDIR", tmp.to_str().expect("UTF-8 path"))]);
        let alice = app.api.register_citizen("alice");
        app.api.charge(&alice.token, "100000").expect(201);
        let out = tempfile::tempdir().expect("temporary directory");
        for (name, gzip) in [("x.tar.gz", true), ("x.tar", false)] {
            let archive = out.path().join(name);
            let archive_text = archive.to_str().expect("UTF-8 path");
            let exported = app.server.run(&["handover", "export", archive_text]);
            let stdout = String::from_utf8_lossy(&exported.stdout);
            assert!(exported.status.success(), "{}", String::from_utf8_lossy(&exported.stderr));
            assert!(stdout.contains(&format!("exported snapshot 0 to {archive_text}:")), "{stdout}");

            let bytes = std::fs::read(&archive).expect("the archive is written");
            assert_eq!(bytes.starts_with(&[0x1f, 0x8b]), gzip, "{name}: gzip magic");
            // Version 2's seven files at the top level, regular, in the packing order: version 1's
            // four, then the three version 2 adds.
            let tar: Box<dyn std::io::Read> = if gzip {
                Box::new(flate2::read::GzDecoder::new(bytes.as_slice()))
            } else {
                Box::new(bytes.as_slice())
            };
            let mut reader = tar::Archive::new(tar);
            let entries: Vec<(String, tar::EntryType)> = reader
                .entries()
                .expect("a tar stream")
                .map(|entry| {
                    let entry = entry.expect("an entry");
                    (entry.path().expect("a path").to_string_lossy().into_owned(), entry.header().entry_type())
                })
                .collect();
            let expected: Vec<(String, tar::EntryType)> = BUNDLE_FILES
                .iter()
                .chain(&["policy.json", "programs.csv", "allowances.csv"])
                .map(|name| (name.to_string(), tar::EntryType::Regular))
                .collect();
            assert_eq!(entries, expected, "{name}");

            let verified = app.server.run(&["handover", "verify", archive_text]);
            let stdout = String::from_utf8_lossy(&verified.stdout);
            assert!(verified.status.success(), "{name}: {}", String::from_utf8_lossy(&verified.stderr));
            assert!(stdout.contains("citizens 1, merchants 0"), "{name}: {stdout}");
            assert!(stdout.contains("citizen balances 100000 won"), "{name}: {stdout}");
        }
        // Nothing but the archives is left beside them: no staging directory, no partial file.
        assert_eq!(listing(out.path()), ["x.tar", "x.tar.gz"]);
        work.assert_clean();

        // An existing archive is not overwritten.
        let archive = out.path().join("x.tar.gz");
        let before = std::fs::read(&archive).expect("read");
        let again = app.server.run(&["handover", "export", archive.to_str().expect("UTF-8 path")]);
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("exists; export into a new file"));
        assert_eq!(std::fs::read(&archive).expect("read"), before, "the existing archive changed");
        assert_eq!(listing(out.path()), ["x.tar", "x.tar.gz"]);
    }

    scenarios!(
        a_tar_gz_imports_as_its_directory_does,
        a_refused_archive_leaves_the_database_unchanged,
        an_export_to_a_tar_gz_or_a_tar_verifies
    );
}
