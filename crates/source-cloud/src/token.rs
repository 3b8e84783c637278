//! Grants (the tokens a citizen's authorisation gave) and where they are kept.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A secret text (a token, a client secret): its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    /// The secret itself, to send to the party it belongs to. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

/// What one citizen's authorisation at a vendor gave: an access token, usually a refresh
/// token, and when the access token expires.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The access token, sent with every API request.
    pub access_token: Secret,
    /// The refresh token, exchanged for a new grant before the access token expires. Some
    /// vendors (Withings, Fitbit, Dexcom) give a new one with every refresh and void the old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    /// When the access token expires, in seconds since 1970 (`None`: the vendor did not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// The scopes granted, as the vendor wrote them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The vendor's id of the account (Withings `userid`, Fitbit `user_id`, iHealth
    /// `UserID`), for the APIs that need it in their URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// When the grant was obtained, in seconds since 1970.
    pub obtained_at: i64,
}

impl Grant {
    /// Whether the access token expires within `margin_seconds` of `now` (seconds since
    /// 1970), or has. A grant without an expiry never does.
    pub fn expires_within(&self, now: i64, margin_seconds: i64) -> bool {
        self.expires_at
            .is_some_and(|at| at <= now.saturating_add(margin_seconds))
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Grant")
            .field("access_token", &self.access_token)
            .field("refresh_token", &self.refresh_token)
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("user_id", &self.user_id.as_ref().map(|_| "(set)"))
            .field("obtained_at", &self.obtained_at)
            .finish()
    }
}

/// Whose grant: the source (the `[[source]]` id) and the citizen (the name the
/// configuration gives them, never an identifier such as a CPR number).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrantKey {
    /// The source's id in the configuration (`"withings"`).
    pub source: String,
    /// The citizen's name in the configuration (`"anna"`).
    pub citizen: String,
}

impl GrantKey {
    /// The key of `citizen`'s grant at `source`.
    pub fn new(source: impl Into<String>, citizen: impl Into<String>) -> GrantKey {
        GrantKey {
            source: source.into(),
            citizen: citizen.into(),
        }
    }
}

impl fmt::Display for GrantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.source, self.citizen)
    }
}

/// Held while a grant is refreshed: other refreshes of the store's grants, in this process
/// or another, wait until it is dropped ([`TokenStore::lock_refresh`]).
pub struct RefreshLock {
    _held: Option<Box<dyn std::any::Any + Send>>,
}

impl RefreshLock {
    /// A lock that holds nothing off (a store only one process uses).
    pub fn none() -> RefreshLock {
        RefreshLock { _held: None }
    }

    /// A lock held as long as `guard` lives (a locked file, a lease).
    pub fn holding(guard: impl std::any::Any + Send) -> RefreshLock {
        RefreshLock {
            _held: Some(Box::new(guard)),
        }
    }
}

impl fmt::Debug for RefreshLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshLock")
            .field("held", &self._held.is_some())
            .finish()
    }
}

/// Where grants are kept between runs.
///
/// [`FileTokenStore`] (a private file) is the default; implement this to keep them elsewhere
/// (a secrets manager, a database). A `save` must be durable and atomic when it returns: a
/// vendor that rotates refresh tokens voids the old one as soon as the new one is used, and
/// the new one is used only after `save` returned, so a crash at any moment leaves a refresh
/// token that works.
pub trait TokenStore: fmt::Debug + Send + Sync + 'static {
    /// The grant kept under `key`, if any.
    ///
    /// # Errors
    /// The store cannot be read.
    fn load(&self, key: &GrantKey) -> Result<Option<Grant>, Error>;

    /// Keeps `grant` under `key`, replacing what was there, durably and atomically.
    ///
    /// # Errors
    /// The store cannot be written; the grant is then not kept.
    fn save(&self, key: &GrantKey, grant: &Grant) -> Result<(), Error>;

    /// Forgets the grant under `key` (nothing happens when there is none).
    ///
    /// # Errors
    /// The store cannot be written.
    fn remove(&self, key: &GrantKey) -> Result<(), Error>;

    /// Waits until no other refresh of `key`'s grant runs, and holds others off until the
    /// lock is dropped. A session takes it before it reads the grant to refresh, so that two
    /// processes never refresh with the same refresh token (a vendor that rotates refuses the
    /// second, and the grant would look revoked). The default holds nothing off: enough for a
    /// store that one process uses.
    ///
    /// # Errors
    /// The lock cannot be taken.
    fn lock_refresh(&self, key: &GrantKey) -> Result<RefreshLock, Error> {
        let _ = key;
        Ok(RefreshLock::none())
    }
}

/// Grants in memory only, for tests and for one-off runs.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    grants: Mutex<BTreeMap<GrantKey, Grant>>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> MemoryTokenStore {
        MemoryTokenStore::default()
    }
}

impl TokenStore for MemoryTokenStore {
    fn load(&self, key: &GrantKey) -> Result<Option<Grant>, Error> {
        Ok(self
            .grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned())
    }

    fn save(&self, key: &GrantKey, grant: &Grant) -> Result<(), Error> {
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), grant.clone());
        Ok(())
    }

    fn remove(&self, key: &GrantKey) -> Result<(), Error> {
        self.grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Ok(())
    }
}

/// The token file's format.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    /// The format's version: 1.
    version: u32,
    /// Grants by `source/citizen`.
    grants: BTreeMap<String, Grant>,
}

const FORMAT_VERSION: u32 = 1;

/// Grants in one JSON file that only its owner can read (mode 0600 on Unix; a file that
/// others can read is refused, as ssh refuses a private key that others can read).
///
/// Every change is written to a new file beside it (0600), flushed to disk and renamed over
/// the old one, and the folder is flushed too: a crash leaves the old file or the new one,
/// never half of one. Changes by several processes at once are serialised by an exclusive
/// lock on `<file>.lock`.
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    path: PathBuf,
}

impl FileTokenStore {
    /// The store in `path` (created on the first save, with its folder).
    pub fn new(path: impl Into<PathBuf>) -> FileTokenStore {
        FileTokenStore { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, what: &'static str) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::TokenStore {
            path: self.path.clone(),
            what,
            source,
        }
    }

    fn read(&self) -> Result<TokenFile, Error> {
        let mut file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(TokenFile {
                    version: FORMAT_VERSION,
                    grants: BTreeMap::new(),
                });
            }
            Err(e) => return Err(self.io("cannot be opened")(e)),
        };
        check_private(&self.path, &file)?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(self.io("cannot be read"))?;
        // serde_json's messages can quote a value: say where only.
        let parsed: TokenFile = serde_json::from_str(&text).map_err(|e| Error::TokenFile {
            path: self.path.clone(),
            reason: format!(
                "not a token file (line {}, column {}: {:?})",
                e.line(),
                e.column(),
                e.classify()
            ),
        })?;
        if parsed.version != FORMAT_VERSION {
            return Err(Error::TokenFile {
                path: self.path.clone(),
                reason: format!(
                    "format version {} (this version reads {FORMAT_VERSION})",
                    parsed.version
                ),
            });
        }
        Ok(parsed)
    }

    /// Runs `change` on the file's grants under the lock and writes the result atomically.
    fn update(&self, change: impl FnOnce(&mut BTreeMap<String, Grant>)) -> Result<(), Error> {
        let folder = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&folder).map_err(self.io("its folder cannot be created"))?;
        let lock_path = sibling(&self.path, ".lock");
        let lock = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(self.io("its lock file cannot be opened"))?;
        lock.lock().map_err(self.io("cannot be locked"))?;
        let mut file = self.read()?;
        change(&mut file.grants);
        let text = serde_json::to_vec_pretty(&file).map_err(|e| Error::TokenFile {
            path: self.path.clone(),
            reason: format!("cannot be written as JSON ({:?})", e.classify()),
        })?;
        let temporary = sibling(&self.path, &format!(".{}.tmp", std::process::id()));
        let written = (|| {
            let mut out = private_options()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temporary)?;
            out.write_all(&text)?;
            out.sync_all()?;
            fs::rename(&temporary, &self.path)?;
            sync_folder(&folder)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written.map_err(self.io("cannot be written"))?;
        // Dropping the file unlocks it.
        drop(lock);
        Ok(())
    }
}

impl TokenStore for FileTokenStore {
    fn load(&self, key: &GrantKey) -> Result<Option<Grant>, Error> {
        Ok(self.read()?.grants.remove(&key.to_string()))
    }

    fn save(&self, key: &GrantKey, grant: &Grant) -> Result<(), Error> {
        self.update(|grants| {
            grants.insert(key.to_string(), grant.clone());
        })
    }

    fn remove(&self, key: &GrantKey) -> Result<(), Error> {
        self.update(|grants| {
            grants.remove(&key.to_string());
        })
    }

    /// An exclusive lock on `<file>.refresh.lock` (one for all the file's grants: refreshes
    /// are rare and short).
    fn lock_refresh(&self, _: &GrantKey) -> Result<RefreshLock, Error> {
        if let Some(folder) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(folder).map_err(self.io("its folder cannot be created"))?;
        }
        let file = private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(sibling(&self.path, ".refresh.lock"))
            .map_err(self.io("its refresh lock cannot be opened"))?;
        file.lock()
            .map_err(self.io("cannot be locked for a refresh"))?;
        Ok(RefreshLock::holding(file))
    }
}

/// `path` with `suffix` added to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(unix)]
fn private_options() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = OpenOptions::new();
    o.mode(0o600);
    o
}

#[cfg(not(unix))]
fn private_options() -> OpenOptions {
    OpenOptions::new()
}

#[cfg(unix)]
fn check_private(path: &Path, file: &File) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(|source| Error::TokenStore {
            path: path.to_path_buf(),
            what: "cannot be inspected",
            source,
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::TokenFileMode {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &File) -> Result<(), Error> {
    Ok(())
}

#[cfg(unix)]
fn sync_folder(folder: &Path) -> io::Result<()> {
    File::open(folder)?.sync_all()
}

#[cfg(not(unix))]
fn sync_folder(_: &Path) -> io::Result<()> {
    Ok(())
}
