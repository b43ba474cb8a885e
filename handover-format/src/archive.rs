//! Bundles packed as `.tar`, `.tar.gz` or `.tgz` (HANDOVER.md: "a directory, or a `.tar` /
//! `.tar.gz` of one").
//!
//! Reading: an archive is unpacked into a private temporary directory (mode 0700, under
//! `TMPDIR`), which the directory code paths then read unchanged; it is removed when the
//! [`BundleDir`] is dropped, on success and on error alike, or by [`remove_unpacked`] when the
//! command is interrupted by a signal; one left behind by a process killed outright (SIGKILL)
//! is removed by the next run that unpacks ([`remove_left_behind`]). Gzip is recognised by its magic
//! bytes, not by the file name. Unpacking is strict and bounded: only the bundle files (the four
//! every version has, and the three version 2 adds), as regular files, at the top level or all
//! under one directory; no links, devices, absolute
//! paths, `..`, other names or duplicates; at most [`ENTRIES_MAX`] entries and
//! [`UNPACKED_BYTES_MAX`] bytes. Entries are never unpacked by their own names: each accepted
//! file is written by this module under its bundle name, so no archive can write elsewhere.
//!
//! The tar crate's long-name and pax handling would read those headers whole into memory, of any
//! size; so the archive is read raw and the few extension headers a bundle may carry (pax `x`
//! and `g`, GNU long names) are read here, each bounded by [`EXTENSION_BYTES_MAX`].
//!
//! Writing: [`ExportTarget`] has an export write into a staging directory next to the archive,
//! then packs it (the files at the top level) into a temporary file there and renames that into
//! place.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::bundle::{
    ALLOWANCES_FILE, CITIZENS_FILE, MANIFEST_FILE, MERCHANTS_FILE, POLICY_FILE, PROGRAMS_FILE, TRANSACTIONS_FILE,
};
use crate::output::note;

/// The files every bundle has, in the order they are packed (the manifest first, so a reader of
/// the stream meets it first).
pub const BUNDLE_FILES: [&str; 4] = [MANIFEST_FILE, CITIZENS_FILE, MERCHANTS_FILE, TRANSACTIONS_FILE];
/// The files version 2 adds, packed after [`BUNDLE_FILES`] when they are there. Unpacking
/// accepts them and does not require them: the manifest's version says whether they belong.
pub const BUNDLE_FILES_V2: [&str; 3] = [POLICY_FILE, PROGRAMS_FILE, ALLOWANCES_FILE];

/// Whether `name` is a file of a bundle of some version.
fn is_bundle_file(name: &str) -> bool {
    BUNDLE_FILES.contains(&name) || BUNDLE_FILES_V2.contains(&name)
}
/// Largest unpacked archive: the sum of all entries' declared sizes. Generous (a city-sized
/// history is a few GiB); past it, hand the bundle over as a directory.
pub const UNPACKED_BYTES_MAX: u64 = 64 << 30;
/// Entries read at most, extension headers and directories included: a bundle archive has four
/// or seven files, perhaps their directory and a few extension headers.
pub const ENTRIES_MAX: usize = 32;
/// Largest pax extended header or GNU long name read (they are held in memory).
pub const EXTENSION_BYTES_MAX: u64 = 64 << 10;
/// Bytes of the start of a file looked at to tell its format: enough for the ustar magic.
const SNIFF_BYTES: usize = 512;
/// The gzip magic bytes (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Where a POSIX (ustar) or GNU tar header says so.
const USTAR_MAGIC_OFFSET: usize = 257;
/// Gzip level of exported archives (flate2's default, stated): CSV shrinks well already at it.
const GZIP_LEVEL: u32 = 6;
/// Buffer of the copy from the archive to an unpacked file, and of the packed archive's writer.
const COPY_BUFFER_BYTES: usize = 1 << 20;
/// The mode of each file in an exported archive.
const PACKED_FILE_MODE: u32 = 0o644;
/// The unpacking and staging directories, and the unpacked files: the owner's alone, since a
/// bundle holds password hashes. (The exported archive is 0600 too, as every temporary file.)
const PRIVATE_DIRECTORY_MODE: u32 = 0o700;
const PRIVATE_FILE_MODE: u32 = 0o600;

/// What a path given as a bundle holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Packing {
    Directory,
    Tar,
    TarGz,
}

/// A bundle directory to read: the one given, or an archive unpacked into a private temporary
/// directory that is removed when this is dropped.
pub enum BundleDir {
    Given(PathBuf),
    Unpacked(Unpacked),
}

impl BundleDir {
    /// The directory holding `manifest.json` and the CSV files.
    pub fn path(&self) -> &Path {
        match self {
            BundleDir::Given(dir) => dir,
            BundleDir::Unpacked(unpacked) => unpacked.temporary.path(),
        }
    }
}

/// An unpacked bundle's directory, listed in [`UNPACKED`] while it exists so that a signal can
/// remove it ([`remove_unpacked`]); removed when dropped.
pub struct Unpacked {
    temporary: tempfile::TempDir,
}

impl Unpacked {
    fn new(temporary: tempfile::TempDir) -> Unpacked {
        unpacked_list().push(temporary.path().to_owned());
        Unpacked { temporary }
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        unpacked_list().retain(|dir| dir != self.temporary.path());
        // The TempDir removes the directory after this.
    }
}

/// The directories unpacked by this process and not yet removed.
static UNPACKED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn unpacked_list() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic while the list was held leaves a list still worth cleaning up.
    UNPACKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Removes every directory this process has unpacked a bundle into and not yet removed: for a
/// command that is being interrupted (SIGINT, SIGTERM, SIGHUP) and is about to exit without
/// running its destructors. Returns the directories removed.
pub fn remove_unpacked() -> Vec<PathBuf> {
    let mut list = unpacked_list();
    let removed: Vec<PathBuf> = list.drain(..).filter(|dir| std::fs::remove_dir_all(dir).is_ok()).collect();
    removed
}

/// Where unpacking directories are made: `<TMPDIR>/wallet-handover-<pid>-<random>`. The process
/// id in the name lets the next run tell one whose process is gone (killed with SIGKILL, or the
/// machine stopped: nothing could remove it then) and remove it ([`remove_left_behind`]).
const UNPACK_PREFIX: &str = "wallet-handover-";

/// Removes the unpacking directories in `tmp` that this user's earlier runs left behind: those
/// whose process no longer runs. Returns what it removed. Only on Linux (where `/proc` tells
/// whether a process runs); elsewhere nothing is removed and the runbook's advice stands.
pub fn remove_left_behind(tmp: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    if !Path::new("/proc/self").exists() {
        return removed;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else { return removed };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = left_behind_pid(&name) else { continue };
        let path = entry.path();
        // Only a directory (never a link to one) of this user's, whose process is gone.
        let ours = std::fs::symlink_metadata(&path).is_ok_and(|metadata| {
            use std::os::unix::fs::MetadataExt;
            metadata.is_dir() && metadata.uid() == own_uid()
        });
        if ours && !Path::new("/proc").join(pid.to_string()).exists() && std::fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// The process id in an unpacking directory's name (`wallet-handover-<pid>-<random>`).
fn left_behind_pid(name: &str) -> Option<u32> {
    let (pid, random) = name.strip_prefix(UNPACK_PREFIX)?.split_once('-')?;
    if random.is_empty() {
        return None;
    }
    pid.parse().ok()
}

/// This process's user id, as the owner of the files it creates (read from a file it creates).
fn own_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    tempfile::tempfile().and_then(|file| file.metadata()).map_or(u32::MAX, |metadata| metadata.uid())
}

/// Opens the bundle at `path`: a directory as it is, or a `.tar`, `.tar.gz` or `.tgz` (told by
/// content) unpacked into a private temporary directory under `TMPDIR`.
pub fn open(path: &Path) -> Result<BundleDir, String> {
    match packing_of(path)? {
        Packing::Directory => Ok(BundleDir::Given(path.to_owned())),
        packing => {
            let started = std::time::Instant::now();
            let cannot_create = |error: std::io::Error| {
                let path = path.display();
                format!("cannot create a directory to unpack {path} into: {error}; set TMPDIR to a writable directory")
            };
            for left in remove_left_behind(&std::env::temp_dir()) {
                note(format_args!("removed {}, left behind by an earlier run that was killed", left.display()));
            }
            let prefix = format!("{UNPACK_PREFIX}{}-", std::process::id());
            let temporary = tempfile::Builder::new()
                .prefix(&prefix)
                .permissions(owner_only(PRIVATE_DIRECTORY_MODE))
                .tempdir()
                .map_err(cannot_create)?;
            note(format_args!("unpacking {} into {} ...", path.display(), temporary.path().display()));
            let unpacked = Unpacked::new(temporary);
            // On an error `unpacked` is dropped here, and with it whatever was unpacked.
            let unpacked_bytes = unpack(path, packing == Packing::TarGz, unpacked.temporary.path())?;
            note(format_args!("unpacked {unpacked_bytes} bytes in {:.1} s", started.elapsed().as_secs_f64()));
            Ok(BundleDir::Unpacked(unpacked))
        }
    }
}

fn owner_only(mode: u32) -> std::fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(mode)
}

/// Tells a directory from a tar or gzip file: gzip by its magic bytes, tar by the ustar magic
/// (or, for the old tar format that has none, by the name ending in `.tar`).
fn packing_of(path: &Path) -> Result<Packing, String> {
    let what_to_give = "give a bundle directory, or a .tar, .tar.gz or .tgz of one";
    let metadata =
        std::fs::metadata(path).map_err(|error| format!("cannot open {}: {error}; {what_to_give}", path.display()))?;
    if metadata.is_dir() {
        return Ok(Packing::Directory);
    }
    if !metadata.is_file() {
        return Err(format!("{} is neither a directory nor a file; {what_to_give}", path.display()));
    }
    let mut start = Vec::with_capacity(SNIFF_BYTES);
    File::open(path)
        .and_then(|file| file.take(SNIFF_BYTES as u64).read_to_end(&mut start))
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    if start.starts_with(&GZIP_MAGIC) {
        return Ok(Packing::TarGz);
    }
    let name = path.file_name().map(|name| name.to_string_lossy().to_lowercase()).unwrap_or_default();
    if start.get(USTAR_MAGIC_OFFSET..USTAR_MAGIC_OFFSET + 5) == Some(b"ustar") || name.ends_with(".tar") {
        return Ok(Packing::Tar);
    }
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        return Err(format!(
            "{} is named as a .tar.gz but does not start with the gzip magic bytes 1f 8b: it is damaged or not \
             gzip; ask for the bundle again",
            path.display()
        ));
    }
    Err(format!("{} is neither a bundle directory nor a tar or gzip file; {what_to_give}", path.display()))
}

/// Why an entry is refused, with what to do; `name` is the entry as the archive names it. (Not
/// "unpack it yourself": an archive refused here may hold links or `..` paths.)
fn refuse_entry(archive: &Path, name: &str, reason: &str) -> String {
    format!(
        "archive {}: entry {name:?} {reason}; a bundle archive holds only the regular files {} (and in version 2 \
         {}, at the top level or all under one directory): ask the sender to repack it so",
        archive.display(),
        BUNDLE_FILES.join(", "),
        BUNDLE_FILES_V2.join(", "),
    )
}

/// Where an entry would go: the directory it is under (if any) and its name within it.
#[derive(Debug, PartialEq, Eq)]
struct Place<'a> {
    directory: Option<&'a str>,
    name: Option<&'a str>,
}

/// Splits an entry's path into its place, refusing absolute paths, `..` and nesting deeper
/// than one directory. `.` and empty components (`./x`, `a//x`, a directory's trailing `/`)
/// are dropped. `is_directory` entries have no name: at most one component, their directory.
fn place_of(path: &str, is_directory: bool) -> Result<Place<'_>, &'static str> {
    if path.starts_with('/') {
        return Err("has an absolute path");
    }
    let components: Vec<&str> =
        path.split('/').filter(|component| !component.is_empty() && *component != ".").collect();
    if components.contains(&"..") {
        return Err("has a '..' component, which would reach outside the bundle");
    }
    match (is_directory, components.as_slice()) {
        (true, []) => Ok(Place { directory: None, name: None }),
        (true, [directory]) => Ok(Place { directory: Some(directory), name: None }),
        (false, [name]) => Ok(Place { directory: None, name: Some(name) }),
        (false, [directory, name]) => Ok(Place { directory: Some(directory), name: Some(name) }),
        (false, []) => Err("has an empty name"),
        _ => Err("is nested more than one directory deep"),
    }
}

/// What an entry type is, for a refusal.
fn entry_type_named(entry_type: tar::EntryType) -> String {
    match entry_type {
        tar::EntryType::Symlink => "is a symbolic link".to_owned(),
        tar::EntryType::Link => "is a hard link".to_owned(),
        tar::EntryType::Char => "is a character device".to_owned(),
        tar::EntryType::Block => "is a block device".to_owned(),
        tar::EntryType::Fifo => "is a named pipe".to_owned(),
        tar::EntryType::GNUSparse => "is a sparse file".to_owned(),
        tar::EntryType::Continuous => "is a contiguous file (type 7)".to_owned(),
        other => format!("is of tar entry type {:?}", other.as_byte() as char),
    }
}

/// What extension headers said about the entry that follows them.
#[derive(Default)]
struct Pending {
    path: Option<String>,
    size: Option<u64>,
}

/// Reads an extension header's data, bounded by [`EXTENSION_BYTES_MAX`].
fn read_extension(archive: &Path, entry: &mut impl Read, size: u64) -> Result<Vec<u8>, String> {
    if size > EXTENSION_BYTES_MAX {
        return Err(format!(
            "archive {}: an extended header (pax or GNU long name) is {size} bytes; at most {EXTENSION_BYTES_MAX} \
             are read: repack the bundle with plain tar or ustar headers",
            archive.display()
        ));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.take(size).read_to_end(&mut bytes).map_err(|error| damaged(archive, &error))?;
    Ok(bytes)
}

fn damaged(archive: &Path, error: &std::io::Error) -> String {
    format!("cannot read archive {}: {error}; it is damaged or cut short: ask for the bundle again", archive.display())
}

/// Unpacks the bundle archive (a tar, gzipped or not) at `archive` into the empty directory `into`, strictly (see the
/// module doc). Returns the bytes unpacked.
fn unpack(archive: &Path, gzip: bool, into: &Path) -> Result<u64, String> {
    let file = File::open(archive).map_err(|error| format!("cannot open {}: {error}", archive.display()))?;
    let reader = std::io::BufReader::with_capacity(COPY_BUFFER_BYTES, file);
    // Multi-member gzip, as some parallel compressors write.
    let reader: Box<dyn Read> =
        if gzip { Box::new(flate2::read::MultiGzDecoder::new(reader)) } else { Box::new(reader) };
    let mut tar = tar::Archive::new(reader);
    tar.set_ignore_zeros(false);
    let entries = tar.entries().map_err(|error| damaged(archive, &error))?.raw(true);

    let mut declared_bytes = 0u64;
    let mut unpacked_bytes = 0u64;
    // The one directory every file is under (Some(None): the top level), once known.
    let mut layout: Option<Option<String>> = None;
    let mut seen: Vec<String> = Vec::new();
    let mut pending = Pending::default();
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    for (index, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|error| damaged(archive, &error))?;
        let header_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if index >= ENTRIES_MAX {
            return Err(refuse_entry(
                archive,
                &header_name,
                &format!("is past the first {ENTRIES_MAX} entries, which are all that are read"),
            ));
        }
        let size = entry.size();
        // Every entry's data counts, whatever its kind, so nothing reads past the bound.
        declared_bytes = declared_bytes.saturating_add(size);
        if declared_bytes > UNPACKED_BYTES_MAX {
            return Err(format!(
                "archive {}: entry {header_name:?} ({size} bytes) takes the archive past {UNPACKED_BYTES_MAX} bytes \
                 unpacked, the most this command unpacks; hand the bundle over as a directory instead",
                archive.display()
            ));
        }
        let entry_type = entry.header().entry_type();
        match entry_type {
            tar::EntryType::XHeader => {
                let data = read_extension(archive, &mut entry, size)?;
                for record in tar::PaxExtensions::new(&data) {
                    let record = record.map_err(|error| damaged(archive, &error))?;
                    let key = String::from_utf8_lossy(record.key_bytes());
                    let value = String::from_utf8_lossy(record.value_bytes()).into_owned();
                    match key.as_ref() {
                        "path" => pending.path = Some(value),
                        "size" => {
                            let size = value.parse().map_err(|_| {
                                format!("archive {}: a pax header's size {value:?} is not a number", archive.display())
                            })?;
                            pending.size = Some(size);
                        }
                        sparse if sparse.starts_with("GNU.sparse.") => {
                            return Err(refuse_entry(archive, &header_name, "is a sparse file"));
                        }
                        // Times, owners, xattrs, comments: nothing a bundle reads.
                        _ => {}
                    }
                }
                continue;
            }
            // Global pax records (`git archive` writes its commit there): nothing a bundle reads.
            tar::EntryType::XGlobalHeader => {
                read_extension(archive, &mut entry, size)?;
                continue;
            }
            tar::EntryType::GNULongName => {
                let mut data = read_extension(archive, &mut entry, size)?;
                while data.last() == Some(&0) {
                    data.pop();
                }
                pending.path = Some(String::from_utf8_lossy(&data).into_owned());
                continue;
            }
            // The target of the link that follows, which is refused for being a link.
            tar::EntryType::GNULongLink => {
                read_extension(archive, &mut entry, size)?;
                continue;
            }
            _ => {}
        }
        let name = pending.path.take().unwrap_or(header_name);
        if let Some(pax_size) = pending.size.take() {
            if pax_size != size {
                return Err(refuse_entry(
                    archive,
                    &name,
                    &format!(
                        "has a pax size ({pax_size} bytes) other than its header's ({size}); a file over 8 GiB \
                         needs GNU tar headers (GNU tar's default format)"
                    ),
                ));
            }
        }
        if name.chars().any(char::is_control) {
            return Err(refuse_entry(archive, &name, "has a control character in its name"));
        }
        if seen.contains(&name) {
            return Err(refuse_entry(archive, &name, "appears twice (the second would replace the first)"));
        }
        seen.push(name.clone());
        let is_directory = match entry_type {
            tar::EntryType::Directory => true,
            // The old tar format marks a directory only by the slash ending its name.
            tar::EntryType::Regular => name.ends_with('/'),
            other => return Err(refuse_entry(archive, &name, &entry_type_named(other))),
        };
        let place = place_of(&name, is_directory).map_err(|reason| refuse_entry(archive, &name, reason))?;
        if place.name.is_some_and(|file_name| !is_bundle_file(file_name)) {
            return Err(refuse_entry(archive, &name, "is not a bundle file"));
        }
        let directory = place.directory.map(str::to_owned);
        // The root itself (`./`) says nothing about where the files are.
        let is_root = is_directory && directory.is_none();
        match &layout {
            _ if is_root => {}
            None => layout = Some(directory),
            Some(known) if *known == directory => {}
            Some(known) => {
                let first = match known {
                    Some(first) => format!("under the directory {first:?}"),
                    None => "at the top level".to_owned(),
                };
                return Err(refuse_entry(archive, &name, &format!("is not where the first entries are ({first})")));
            }
        }
        let Some(file_name) = place.name else {
            if size > 0 {
                return Err(refuse_entry(archive, &name, "is a directory with data"));
            }
            continue;
        };
        let target_path = into.join(file_name);
        let copied = match copy_entry(&mut entry, &target_path, &mut buffer) {
            Ok(copied) => copied,
            Err(CopyFailure::Read(error)) => return Err(damaged(archive, &error)),
            // create_new: a file already there (the same file under another spelling) is refused.
            Err(CopyFailure::Write(error)) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(refuse_entry(archive, &name, "names a bundle file a second time"));
            }
            Err(CopyFailure::Write(error)) => {
                return Err(format!(
                    "cannot write {} (from archive {} entry {name:?}): {error}; unpacking needs as much free space as \
                     the bundle's files: set TMPDIR to a directory with room, or unpack the archive yourself and give \
                     the directory",
                    target_path.display(),
                    archive.display()
                ))
            }
        };
        if copied != size {
            return Err(format!(
                "archive {}: entry {name:?} holds {copied} of its {size} bytes: the archive is cut short; ask for the \
                 bundle again",
                archive.display()
            ));
        }
        unpacked_bytes += copied;
    }
    if pending.path.is_some() || pending.size.is_some() {
        return Err(format!(
            "archive {}: it ends after an extended header, without the entry it describes: it is cut short; ask for \
             the bundle again",
            archive.display()
        ));
    }
    for file_name in BUNDLE_FILES {
        if !into.join(file_name).is_file() {
            return Err(format!(
                "archive {} holds no {file_name}; a bundle archive holds {}: ask for the whole bundle",
                archive.display(),
                BUNDLE_FILES.join(", ")
            ));
        }
    }
    Ok(unpacked_bytes)
}

/// Which side of a copy failed.
enum CopyFailure {
    Read(std::io::Error),
    Write(std::io::Error),
}

/// Copies an entry's data into a new file at `target_path`; the bytes copied.
fn copy_entry(entry: &mut impl Read, target_path: &Path, buffer: &mut [u8]) -> Result<u64, CopyFailure> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE_MODE)
        .open(target_path)
        .map_err(CopyFailure::Write)?;
    let mut target = BufWriter::with_capacity(COPY_BUFFER_BYTES, file);
    let mut copied = 0u64;
    loop {
        let read = match entry.read(buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CopyFailure::Read(error)),
        };
        target.write_all(&buffer[..read]).map_err(CopyFailure::Write)?;
        copied += read as u64;
    }
    target.flush().map_err(CopyFailure::Write)?;
    Ok(copied)
}

/// The archive an export path asks for by its name, if any: `Some(true)` for `.tar.gz` and
/// `.tgz` (gzip), `Some(false)` for `.tar`.
fn export_gzip(out: &Path) -> Option<bool> {
    let name = out.file_name()?.to_string_lossy().to_lowercase();
    if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
        Some(true)
    } else if name.ends_with(".tar") {
        Some(false)
    } else {
        None
    }
}

/// Where an export writes its bundle. For a directory, that directory. For a path ending in
/// `.tar.gz`, `.tgz` or `.tar`, a staging directory next to it; [`ExportTarget::finish`] then
/// packs the bundle (the files at the top level) into a temporary file there and renames it into
/// place, so the archive either does not exist or is complete. Dropped without `finish` (the
/// export failed), the staging directory is removed.
pub struct ExportTarget {
    dir: PathBuf,
    archive: Option<Staged>,
}

/// An archive being exported: where it goes, whether gzipped, and the staging directory.
struct Staged {
    out: PathBuf,
    gzip: bool,
    staging: tempfile::TempDir,
}

impl ExportTarget {
    /// The target for `out`; for an archive, refuses an existing `out` and makes the staging
    /// directory (creating `out`'s directory if needed, as a directory export does).
    pub fn prepare(out: &Path) -> Result<ExportTarget, String> {
        let Some(gzip) = export_gzip(out) else {
            return Ok(ExportTarget { dir: out.to_owned(), archive: None });
        };
        if std::fs::symlink_metadata(out).is_ok() {
            return Err(format!("{} exists; export into a new file", out.display()));
        }
        let parent = parent_of(out);
        std::fs::create_dir_all(parent).map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
        let staging = tempfile::Builder::new()
            .prefix(".wallet-handover-export-")
            .permissions(owner_only(PRIVATE_DIRECTORY_MODE))
            .tempdir_in(parent)
            .map_err(|error| format!("cannot create a temporary directory in {}: {error}", parent.display()))?;
        let dir = staging.path().join("bundle");
        Ok(ExportTarget { dir, archive: Some(Staged { out: out.to_owned(), gzip, staging }) })
    }

    /// The directory to export the bundle into (it does not exist yet for an archive).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// For an archive, packs the exported bundle and renames the archive into place. Returns the
    /// export's `summary` naming the archive instead of the staging directory.
    pub fn finish(self, summary: String) -> Result<String, String> {
        let Some(Staged { out, gzip, staging }) = self.archive else {
            return Ok(summary);
        };
        let parent = parent_of(&out);
        let failed = |error: std::io::Error| format!("cannot write {}: {error}", out.display());
        let packed = tempfile::Builder::new()
            .prefix(".wallet-handover-export-")
            .suffix(".partial")
            .tempfile_in(parent)
            .map_err(|error| format!("cannot create a temporary file in {}: {error}", parent.display()))?;
        pack(&self.dir, packed.as_file(), gzip).map_err(failed)?;
        packed.as_file().sync_all().map_err(failed)?;
        packed.persist_noclobber(&out).map_err(|error| failed(error.error))?;
        // The rename is durable once the directory is.
        File::open(parent)
            .and_then(|directory| directory.sync_all())
            .map_err(|error| format!("cannot sync {}: {error}", parent.display()))?;
        drop(staging);
        Ok(summary.replace(&self.dir.display().to_string(), &out.display().to_string()))
    }
}

/// The directory a path is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Packs the bundle files of `dir` into `file` as a tar, gzipped or not.
fn pack(dir: &Path, file: &File, gzip: bool) -> std::io::Result<()> {
    let writer = BufWriter::with_capacity(COPY_BUFFER_BYTES, file);
    let writer = if gzip {
        let encoder = flate2::write::GzEncoder::new(writer, flate2::Compression::new(GZIP_LEVEL));
        append_bundle(dir, encoder)?.finish()?
    } else {
        append_bundle(dir, writer)?
    };
    writer.into_inner().map_err(|error| error.into_error())?;
    Ok(())
}

/// Writes the bundle files of `dir` as a tar stream to `writer`, with plain headers (GNU, so a
/// file over 8 GiB fits): regular file, mode 0644, owner 0, the file's modification time. The
/// files of version 2 are packed when the export wrote them.
fn append_bundle<W: Write>(dir: &Path, writer: W) -> std::io::Result<W> {
    let mut builder = tar::Builder::new(writer);
    let added = BUNDLE_FILES_V2.into_iter().filter(|name| dir.join(name).exists());
    for name in BUNDLE_FILES.into_iter().chain(added) {
        let file = File::open(dir.join(name))?;
        let metadata = file.metadata()?;
        let modified = metadata.modified()?.duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(metadata.len());
        header.set_mode(PACKED_FILE_MODE);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(modified);
        builder.append_data(&mut header, name, file)?;
    }
    builder.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_placed_at_the_top_or_under_one_directory_only() {
        assert_eq!(place_of("manifest.json", false), Ok(Place { directory: None, name: Some("manifest.json") }));
        assert_eq!(
            place_of("./b//citizens.csv", false),
            Ok(Place { directory: Some("b"), name: Some("citizens.csv") })
        );
        assert_eq!(place_of("b/", true), Ok(Place { directory: Some("b"), name: None }));
        assert_eq!(place_of("./", true), Ok(Place { directory: None, name: None }));
        assert!(place_of("/manifest.json", false).unwrap_err().contains("absolute"));
        assert!(place_of("../evil.csv", false).unwrap_err().contains("'..'"));
        assert!(place_of("b/../../citizens.csv", false).unwrap_err().contains("'..'"));
        assert!(place_of("a/b/citizens.csv", false).unwrap_err().contains("nested"));
        assert!(place_of("a/b/", true).unwrap_err().contains("nested"));
    }

    #[test]
    fn an_unpacked_archive_is_private_and_removed_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let work = tempfile::tempdir().expect("temporary directory");
        let archive = work.path().join("bundle.bin");
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            File::create(&archive).expect("create"),
            flate2::Compression::new(GZIP_LEVEL),
        ));
        // A version 2 bundle: the four files and the three it adds.
        for name in BUNDLE_FILES.into_iter().chain(BUNDLE_FILES_V2) {
            let mut header = tar::Header::new_gnu();
            header.set_size(3);
            header.set_mode(0o666);
            builder.append_data(&mut header, format!("b/{name}"), &b"abc"[..]).expect("append");
        }
        builder.into_inner().expect("tar").finish().expect("gzip");
        let unpacked = open(&archive).expect("a good archive unpacks");
        let dir = unpacked.path().to_owned();
        assert_eq!(std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777, PRIVATE_DIRECTORY_MODE);
        for name in BUNDLE_FILES.into_iter().chain(BUNDLE_FILES_V2) {
            let file = dir.join(name);
            assert_eq!(std::fs::read(&file).expect("an unpacked file"), b"abc");
            assert_eq!(std::fs::metadata(&file).expect("file").permissions().mode() & 0o777, PRIVATE_FILE_MODE);
        }
        drop(unpacked);
        assert!(!dir.exists(), "the unpacked directory outlived its BundleDir");
    }

    #[test]
    fn directories_left_by_a_process_that_is_gone_are_removed_and_no_other() {
        let tmp = tempfile::tempdir().expect("temporary directory");
        // A process that has ended: its id is free (unless reused in the instant since).
        let mut ended = std::process::Command::new("true").spawn().expect("run true");
        ended.wait().expect("wait for true");
        let gone = tmp.path().join(format!("{UNPACK_PREFIX}{}-Ab12", ended.id()));
        let running = tmp.path().join(format!("{UNPACK_PREFIX}{}-Cd34", std::process::id()));
        let other = tmp.path().join(format!("{UNPACK_PREFIX}notapid-Ef56"));
        for dir in [&gone, &running, &other] {
            std::fs::create_dir(dir).expect("create");
            std::fs::write(dir.join("citizens.csv"), b"x").expect("write");
        }
        let file_named_so = tmp.path().join(format!("{UNPACK_PREFIX}{}-Gh78", ended.id()));
        std::fs::write(&file_named_so, b"x").expect("write");
        assert_eq!(remove_left_behind(tmp.path()), vec![gone.clone()]);
        assert!(!gone.exists() && running.exists() && other.exists() && file_named_so.exists());
        assert_eq!(left_behind_pid("wallet-handover-123-"), None);
        assert_eq!(left_behind_pid("wallet-handover-export-1"), None);
    }

    #[test]
    fn export_paths_ask_for_an_archive_by_their_name() {
        assert_eq!(export_gzip(Path::new("out/x.tar.gz")), Some(true));
        assert_eq!(export_gzip(Path::new("x.TGZ")), Some(true));
        assert_eq!(export_gzip(Path::new("x.tar")), Some(false));
        assert_eq!(export_gzip(Path::new("bundle-0001")), None);
        assert_eq!(export_gzip(Path::new("x.tar.gz/")), Some(true));
    }
}
