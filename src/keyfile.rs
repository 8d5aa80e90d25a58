//! Secret key files: the one module that reads and writes them.
//!
//! Three secrets live in files: plain key files (one line of 64 hex
//! digits, the wallet seed from which the signing and VRF keys derive:
//! `klero keys new`, `klero wallet export --out`, `klero node --key`), a
//! node's network identity (`DATA_DIR/p2p.key`, the same format holding
//! its libp2p ed25519 secret) and the wallet's encrypted keystores (JSON,
//! [`crate::wallet::keystore`]). All of them go through here:
//!
//! - **Writing** ([`write_new`]): a temporary file in the same directory,
//!   created with mode 0600, written and fsynced, then hard-linked to its
//!   name and unlinked. The link is a rename that refuses an existing name,
//!   so a key is never overwritten (not even by a concurrent writer) and a
//!   crash leaves either no file or the whole file. The directory is
//!   fsynced so the new name survives a power cut.
//! - **Replacing** ([`replace`]): the same temporary file, renamed over
//!   the old one. Only a keystore gaining its chain binding is replaced,
//!   with the same encrypted seed.
//! - **Reading** ([`read_private`]): refused, as ssh refuses a private key,
//!   if the group or others may read the file; at most
//!   [`MAX_SECRET_BYTES`]; the bytes are zeroed when dropped.
//!
//! People keep their funds in the encrypted keystore; plain key files are
//! for nodes (a node must start without a passphrase prompt).

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use klero_chain::Keypair;
use zeroize::Zeroizing;

/// The largest secret file read: a keystore is well under 1 KiB.
pub(crate) const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// A key of that name exists.
    #[error("{path} already exists; refusing to overwrite a key")]
    Exists {
        /// The file.
        path: String,
    },
    /// Someone besides the owner may read the file.
    #[error(
        "{path} is readable by group or others (mode {mode:03o}); a secret key must be private: run `chmod 600 {path}`"
    )]
    NotPrivate {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is far larger than any key.
    #[error("{path} is larger than {MAX_SECRET_BYTES} bytes: not a key file")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// A plain key file that is not 64 hex digits.
    #[error("key file {path} is not 64 hex digits")]
    NotHex {
        /// The file.
        path: String,
    },
    /// The operating system has no random source.
    #[error("no OS randomness: {0}")]
    NoRandomness(String),
    /// File system trouble.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: String,
        /// The OS error.
        source: io::Error,
    },
}

impl KeyFileError {
    fn io(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> KeyFileError {
        let path = path.display().to_string();
        move |source| KeyFileError::Io { what, path, source }
    }
}

/// Writes `contents` to a new file at `path` readable only by its owner.
///
/// # Errors
///
/// [`KeyFileError::Exists`] if `path` exists (it is left untouched);
/// [`KeyFileError::Io`] if the directory or file cannot be written.
pub(crate) fn write_new(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    let exists = || KeyFileError::Exists {
        path: path.display().to_string(),
    };
    if path.symlink_metadata().is_ok() {
        return Err(exists());
    }
    let dir = parent_dir(path);
    fs::create_dir_all(dir).map_err(KeyFileError::io("creating", dir))?;
    let tmp = dir.join(format!(".{}.tmp", hex::encode(random::<8>()?)));
    let linked = write_private(&tmp, contents).and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(exists()),
        Err(e) => return Err(KeyFileError::io("writing", path)(e)),
    }
    sync_dir(dir);
    Ok(())
}

/// Replaces the secret file at `path` with `contents` atomically: a crash
/// leaves the old file or the new one, whole.
///
/// # Errors
///
/// [`KeyFileError::Io`] if the file cannot be written or renamed.
pub(crate) fn replace(path: &Path, contents: &[u8]) -> Result<(), KeyFileError> {
    let dir = parent_dir(path);
    let tmp = dir.join(format!(".{}.tmp", hex::encode(random::<8>()?)));
    let renamed = write_private(&tmp, contents).and_then(|()| fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed.map_err(KeyFileError::io("replacing", path))?;
    sync_dir(dir);
    Ok(())
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Creates `tmp` (mode 0600, never an existing file), writes and fsyncs it.
fn write_private(tmp: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(tmp)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// A new or renamed name is durable once its directory is.
fn sync_dir(dir: &Path) {
    if let Ok(dir) = fs::File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// Reads a secret file that only its owner may read.
///
/// # Errors
///
/// [`KeyFileError::NotPrivate`] if the group or others may read it,
/// [`KeyFileError::TooLarge`] past [`MAX_SECRET_BYTES`], or
/// [`KeyFileError::Io`].
pub(crate) fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyFileError> {
    let file = fs::File::open(path).map_err(KeyFileError::io("reading", path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file
            .metadata()
            .map_err(KeyFileError::io("reading", path))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::NotPrivate {
                path: path.display().to_string(),
                mode,
            });
        }
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_SECRET_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(KeyFileError::io("reading", path))?;
    if bytes.len() as u64 > MAX_SECRET_BYTES {
        return Err(KeyFileError::TooLarge {
            path: path.display().to_string(),
        });
    }
    Ok(bytes)
}

/// Reads the 32-byte seed of a plain key file (64 hex digits).
///
/// # Errors
///
/// As [`read_private`], or [`KeyFileError::NotHex`].
pub(crate) fn read_seed(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    let text = read_private(path)?;
    parse_seed(&text).ok_or_else(|| KeyFileError::NotHex {
        path: path.display().to_string(),
    })
}

/// A seed from 64 hex digits (surrounding whitespace allowed).
pub(crate) fn parse_seed(text: &[u8]) -> Option<Zeroizing<[u8; 32]>> {
    let mut seed = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim_ascii(), seed.as_mut()).ok()?;
    Some(seed)
}

/// Writes a seed as a new plain key file.
///
/// # Errors
///
/// As [`write_new`].
pub(crate) fn write_seed(path: &Path, seed: &[u8; 32]) -> Result<(), KeyFileError> {
    let mut line = Zeroizing::new(hex::encode(seed));
    line.push('\n');
    write_new(path, line.as_bytes())
}

/// Reads a plain key file.
///
/// # Errors
///
/// As [`read_seed`].
pub fn read(path: &Path) -> Result<Keypair, KeyFileError> {
    read_seed(path).map(|seed| Keypair::from_seed(*seed))
}

/// Writes `key`'s seed to a new plain key file.
///
/// # Errors
///
/// As [`write_new`].
pub fn write(path: &Path, key: &Keypair) -> Result<(), KeyFileError> {
    write_seed(path, key.seed())
}

/// The seed in `path`, or a fresh random one written there first (for
/// secrets a program creates for itself, like a node's network identity).
///
/// # Errors
///
/// As [`read_seed`] and [`write_seed`].
pub(crate) fn load_or_create_seed(path: &Path) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
    match read_seed(path) {
        Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            let seed = Zeroizing::new(random::<32>()?);
            match write_seed(path, &seed) {
                Ok(()) => Ok(seed),
                // Another process created it first: use theirs.
                Err(KeyFileError::Exists { .. }) => read_seed(path),
                Err(e) => Err(e),
            }
        }
        other => other,
    }
}

/// A fresh key from the operating system's random source.
///
/// # Errors
///
/// If the OS has no random source.
pub(crate) fn generate() -> Result<Keypair, KeyFileError> {
    let seed = Zeroizing::new(random::<32>()?);
    Ok(Keypair::from_seed(*seed))
}

/// `N` bytes from the operating system's random source.
///
/// # Errors
///
/// If the OS has none.
pub(crate) fn random<const N: usize>() -> Result<[u8; N], KeyFileError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| KeyFileError::NoRandomness(e.to_string()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_private_never_overwritten_and_read_back() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys/a.key");
        let key = Keypair::dev("alice");
        write(&path, &key).expect("write");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(read(&path).expect("read").address(), key.address());
        let before = fs::read(&path).expect("bytes");
        assert!(matches!(
            write(&path, &Keypair::dev("bob")),
            Err(KeyFileError::Exists { .. })
        ));
        assert_eq!(fs::read(&path).expect("bytes"), before);
        let names: Vec<_> = fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["a.key"], "no temp file left behind");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_readable_by_others_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("open.key");
        fs::write(&path, hex::encode([7u8; 32])).expect("write");
        for mode in [0o644, 0o640, 0o604] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            let err = read(&path).expect_err("too open");
            assert!(
                matches!(err, KeyFileError::NotPrivate { mode: m, .. } if m == mode),
                "{err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(*read_seed(&path).expect("private now"), [7u8; 32]);
    }

    #[cfg(unix)]
    #[test]
    fn malformed_and_oversized_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("bad.key");
        write_new(&path, b"not hex\n").expect("write");
        assert!(matches!(read(&path), Err(KeyFileError::NotHex { .. })));
        let big = dir.path().join("big.key");
        fs::write(&big, vec![b'0'; MAX_SECRET_BYTES as usize + 1]).expect("write");
        fs::set_permissions(&big, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(read(&big), Err(KeyFileError::TooLarge { .. })));
    }

    #[test]
    fn load_or_create_creates_once_then_reloads() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("data/p2p.key");
        let first = load_or_create_seed(&path).expect("create");
        let again = load_or_create_seed(&path).expect("load");
        assert_eq!(*first, *again);
    }
}
