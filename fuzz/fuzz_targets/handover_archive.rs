//! Bundle archives through `handover_format::archive::open`: tar and gzip headers, pax and GNU
//! extension headers, names, entry types, sizes.
//!
//! Input: one byte of switches (bit 0: the file is named `.tgz`, else `.tar`), then the file's
//! bytes. Checked: no panic; an accepted archive unpacks to exactly the four bundle files, as
//! regular files, in a directory removed when it is dropped; nothing is written anywhere else
//! (the work directory holds only the archive afterwards, and TMPDIR nothing).

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use handover_format::archive;
use libfuzzer_sys::fuzz_target;

/// A private TMPDIR for the unpacking directories, so a leftover is seen.
fn tmp() -> &'static PathBuf {
    static TMP: OnceLock<PathBuf> = OnceLock::new();
    TMP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("wallet-fuzz-archive-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("TMPDIR", &dir);
        dir
    })
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fuzz_target!(|data: &[u8]| {
    let Some((&switches, bytes)) = data.split_first() else { return };
    let tmp = tmp();
    let work = tempfile::Builder::new().prefix("work-").tempdir_in(tmp.parent().unwrap()).unwrap();
    let name = if switches & 1 != 0 { "bundle.tgz" } else { "bundle.tar" };
    let path = work.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    match archive::open(&path) {
        Ok(unpacked) => {
            let dir = unpacked.path().to_owned();
            assert!(dir.starts_with(tmp), "unpacked into {}", dir.display());
            // The four files of version 1, and any of version 2's three: nothing else.
            let unpacked = entries(&dir);
            for file in archive::BUNDLE_FILES {
                assert!(unpacked.iter().any(|name| name == file), "{file} missing from {unpacked:?}");
            }
            let known = |name: &String| {
                archive::BUNDLE_FILES.contains(&name.as_str()) || archive::BUNDLE_FILES_V2.contains(&name.as_str())
            };
            assert!(unpacked.iter().all(known), "an unknown file unpacked: {unpacked:?}");
            for file in entries(&dir) {
                let metadata = std::fs::symlink_metadata(dir.join(&file)).unwrap();
                assert!(metadata.file_type().is_file(), "{file} is not a regular file");
            }
            drop(unpacked);
            assert!(!dir.exists(), "the unpacking directory is left behind");
        }
        Err(message) => assert!(message.contains(&*path.to_string_lossy()) || !message.is_empty()),
    }
    assert_eq!(entries(work.path()), [name], "something was written beside the archive");
    assert!(entries(tmp).is_empty(), "something was left in TMPDIR: {:?}", entries(tmp));
});
