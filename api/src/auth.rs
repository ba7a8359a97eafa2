//! API tokens and the caller's scope: who may read which petitions.
//!
//! A token belongs to a unit (`00` central, a province, a commune) and a role. Only a salted
//! SHA-256 of its secret is stored (`DIR/tokens.json`); the secret is shown once, when created
//! (`voxpop token create --unit 01 --role officer`). Requests send it as
//! `Authorization: Bearer vxp_<id>_<secret>`.
//!
//! A data directory without any token is in open mode (a single machine, the demo): every
//! caller reads as central, with personal data masked. Once a token exists, the read paths
//! (search, petitions by id, summaries, SQL, exports) need one, and every answer is limited to
//! the caller's unit and everything under it. Intake stays open.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use axum::http::HeaderMap;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use voxpop_schema::Units;

use crate::problem::Problem;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Handles petitions of the unit: sees personal data within scope.
    Officer,
    /// Reads the unit's petitions and summaries: sees personal data within scope.
    Leader,
    /// Exchanges datasets: personal data masked.
    DataEngineer,
    /// Everything.
    Admin,
}

impl Role {
    pub fn parse(value: &str) -> Option<Role> {
        match value {
            "officer" => Some(Role::Officer),
            "leader" => Some(Role::Leader),
            "data_engineer" => Some(Role::DataEngineer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn personal_data(self) -> bool {
        !matches!(self, Role::DataEngineer)
    }
}

/// Who is asking: their unit's scope and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `00`, a 2-digit province or a 5-digit commune code.
    pub unit: String,
    pub role: Role,
    /// False in open mode (no tokens configured).
    pub authenticated: bool,
    /// The token's public id (who acted, in handling events); `None` in open mode.
    pub token_id: Option<String>,
}

impl Caller {
    fn open() -> Caller {
        Caller { unit: "00".to_owned(), role: Role::DataEngineer, authenticated: false, token_id: None }
    }

    /// The province the caller is limited to, if any.
    pub fn province(&self) -> Option<String> {
        match self.unit.len() {
            2 if self.unit != "00" => Some(self.unit.clone()),
            5 => Units::embedded().commune(&self.unit).map(|c| c.province_code.clone()),
            _ => None,
        }
    }

    /// The commune the caller is limited to, if any.
    pub fn commune(&self) -> Option<String> {
        (self.unit.len() == 5).then(|| self.unit.clone())
    }

    /// Whether a petition of this province and commune is the caller's to see.
    pub fn sees(&self, province: &str, commune: &str) -> bool {
        self.province().is_none_or(|p| p == province) && self.commune().is_none_or(|c| c == commune)
    }

    pub fn personal_data(&self) -> bool {
        self.authenticated && self.role.personal_data()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredToken {
    id: String,
    unit: String,
    role: Role,
    salt: String,
    sha256: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

/// The tokens of a data directory.
pub struct TokenStore {
    path: PathBuf,
    tokens: RwLock<Vec<StoredToken>>,
    /// When the file was last read: a token created or revoked by the CLI counts at once.
    loaded: RwLock<Option<std::time::SystemTime>>,
}

/// What `voxpop token list` shows of a token (never its secret or hash).
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub unit: String,
    pub role: Role,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(salt: &str, secret: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(secret.as_bytes());
    hex(&hasher.finalize())
}

impl TokenStore {
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join("tokens.json")
    }

    pub fn open(data_dir: &Path) -> anyhow::Result<TokenStore> {
        let path = TokenStore::path_in(data_dir);
        let tokens = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(err.into()),
        };
        let loaded = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        Ok(TokenStore { path, tokens: RwLock::new(tokens), loaded: RwLock::new(loaded) })
    }

    /// Re-reads the file when it changed since it was read (a cheap `stat` per request).
    fn refresh(&self) {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if *self.loaded.read().unwrap_or_else(|p| p.into_inner()) == modified {
            return;
        }
        let tokens = match std::fs::read(&self.path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(tokens) => tokens,
                Err(err) => {
                    tracing::warn!(error = %err, path = %self.path.display(), "tokens file unreadable; keeping the tokens in memory");
                    return;
                }
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(_) => return,
        };
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = tokens;
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = modified;
    }

    fn save(&self, tokens: &[StoredToken]) -> anyhow::Result<()> {
        let temporary = self.path.with_extension("json.tmp");
        std::fs::write(&temporary, serde_json::to_vec_pretty(tokens)?)?;
        std::fs::rename(&temporary, &self.path)?;
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) =
            std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        Ok(())
    }

    /// Every token, without secrets.
    pub fn list(&self) -> Vec<TokenInfo> {
        self.refresh();
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        tokens
            .iter()
            .map(|t| TokenInfo { id: t.id.clone(), unit: t.unit.clone(), role: t.role, created_at: t.created_at })
            .collect()
    }

    /// Revokes the token with this id (the part after `vxp_`, before the second `_`); false
    /// when there is none.
    pub fn revoke(&self, id: &str) -> anyhow::Result<bool> {
        self.refresh();
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        let before = tokens.len();
        tokens.retain(|t| t.id != id);
        if tokens.len() == before {
            return Ok(false);
        }
        self.save(&tokens)?;
        Ok(true)
    }

    /// Open mode: no tokens file at all (a token was never created). Once one was, revoking
    /// every token does not open the data: every request then needs a token nobody has.
    pub fn is_empty(&self) -> bool {
        self.tokens.read().unwrap_or_else(|p| p.into_inner()).is_empty() && !self.path.exists()
    }

    /// Creates a token and returns its secret form (shown once).
    pub fn create(&self, unit: &str, role: Role) -> anyhow::Result<String> {
        let units = Units::embedded();
        let known = unit == "00" || units.province(unit).is_some() || units.commune(unit).is_some();
        anyhow::ensure!(known, "unknown unit `{unit}`: 00, a province code or a 2025 commune code");
        let mut random = [0u8; 32];
        rand::rng().fill_bytes(&mut random);
        let (id, secret, salt) = (hex(&random[..6]), hex(&random[6..26]), hex(&random[26..]));
        let stored = StoredToken {
            id: id.clone(),
            unit: unit.to_owned(),
            role,
            sha256: digest(&salt, &secret),
            salt,
            created_at: chrono::Utc::now(),
        };
        self.refresh();
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        tokens.push(stored);
        self.save(&tokens)?;
        Ok(format!("vxp_{id}_{secret}"))
    }

    /// The caller of an API request: open mode without tokens; otherwise the unit and role of
    /// the token in `Authorization`, or 401. The sign-in cookie is not read here: a browser
    /// sends it with any request to this site, a form of another site's page included, so it
    /// stands only for the pages ([`TokenStore::page_caller`]), whose forms are ours.
    pub fn caller(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        self.caller_from(headers, false)
    }

    /// The caller of a web page: as [`TokenStore::caller`], or the token of the session cookie
    /// the sign-in page set.
    pub fn page_caller(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        self.caller_from(headers, true)
    }

    fn caller_from(&self, headers: &HeaderMap, cookie_allowed: bool) -> Result<Caller, Problem> {
        self.refresh();
        if self.is_empty() {
            return Ok(Caller::open());
        }
        let unauthorized = |detail: &str| {
            Problem::new(axum::http::StatusCode::UNAUTHORIZED, "unauthorized", "A valid API token is required", detail)
        };
        let mut token = bearer_token(headers).map_err(|detail| unauthorized(&detail))?;
        if token.is_none() && cookie_allowed {
            token = session_token(headers).map_err(|detail| unauthorized(&detail))?;
        }
        let Some(token) = token else {
            return Err(unauthorized("send `Authorization: Bearer <token>` (voxpop token create)"));
        };
        let token = token.as_str();
        let Some((id, secret)) = token.strip_prefix("vxp_").and_then(|rest| rest.split_once('_')) else {
            return Err(unauthorized("malformed token"));
        };
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        match tokens.iter().find(|t| t.id == id) {
            Some(stored) if stored.sha256 == digest(&stored.salt, secret) => Ok(Caller {
                unit: stored.unit.clone(),
                role: stored.role,
                authenticated: true,
                token_id: Some(stored.id.clone()),
            }),
            _ => Err(unauthorized("unknown or revoked token")),
        }
    }
}

/// The token of the request's `Authorization` header, if it has one. The scheme is read
/// without regard to case (RFC 9110, 11.1); a header that cannot be read, names another scheme,
/// or comes twice is refused rather than passed over for the cookie, so that a request is never
/// taken for a caller other than the one it names.
fn bearer_token(headers: &HeaderMap) -> Result<Option<String>, String> {
    let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("send one `Authorization` header, not several".to_owned());
    }
    let value = value.to_str().map_err(|_| "the `Authorization` header is not plain ASCII".to_owned())?;
    let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(format!("use `Authorization: Bearer <token>`, not the `{scheme}` scheme"));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err("the `Authorization` header holds no token after `Bearer`".to_owned());
    }
    Ok(Some(token.to_owned()))
}

/// Whether `caller` may write a unit's own records (`what`: weekly reports, registers): the
/// units' officers, leaders and admins do; data engineers exchange datasets and do not (403).
/// Open mode writes as the central level.
pub fn keeps_unit_records(caller: &Caller, what: &str) -> Result<(), axum::response::Response> {
    use axum::response::IntoResponse;
    if caller.authenticated && caller.role == Role::DataEngineer {
        return Err(Problem::new(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden-role",
            &format!("Your role does not keep {what}"),
            format!("{what} are written by officers, leaders and admins of the unit, not by data engineers"),
        )
        .into_response());
    }
    Ok(())
}

/// Who sent a unit's record: the token's id, or the unit in open mode.
pub fn sender(caller: &Caller) -> String {
    caller.token_id.clone().unwrap_or_else(|| caller.unit.clone())
}

/// The cookie the sign-in page sets (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "voxpop_token";

/// The token of the session cookie, if the request has one; two of them (another path's or
/// domain's cookie of the same name beside ours) are refused rather than one picked.
fn session_token(headers: &HeaderMap) -> Result<Option<String>, String> {
    let mut found = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(key, _)| *key == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_owned());
    let first = found.next();
    if found.next().is_some() {
        return Err(format!("the request holds the `{SESSION_COOKIE}` cookie twice; sign in again"));
    }
    Ok(first.filter(|token| !token.is_empty()))
}

/// The caller of a web page: like [`Caller`], but a request without a valid token gets the
/// sign-in page (401) instead of a JSON problem.
pub struct PageCaller(pub Caller);

impl axum::extract::FromRequestParts<crate::http::AppState> for PageCaller {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::http::AppState,
    ) -> Result<PageCaller, Self::Rejection> {
        let next = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        state.tokens.page_caller(&parts.headers).map(PageCaller).map_err(|problem| {
            crate::staff_pages::sign_in_page(axum::http::StatusCode::UNAUTHORIZED, &next, Some(&problem.detail))
        })
    }
}

/// Handlers take the caller as an argument; a request without a valid token (once tokens
/// exist) is answered 401 before the handler runs.
impl axum::extract::FromRequestParts<crate::http::AppState> for Caller {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::http::AppState,
    ) -> Result<Caller, Self::Rejection> {
        use axum::response::IntoResponse;
        state.tokens.caller(&parts.headers).map_err(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_scope_follows_the_unit() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        assert_eq!(store.caller(&HeaderMap::new()).unwrap().unit, "00", "open mode without tokens");
        let secret = store.create("00004", Role::Officer).unwrap();
        let stored = std::fs::read_to_string(TokenStore::path_in(dir.path())).unwrap();
        assert!(!stored.contains(secret.rsplit('_').next().unwrap()), "only a hash is stored");
        let mut headers = HeaderMap::new();
        assert!(store.caller(&headers).is_err(), "a token is needed once one exists");
        headers.insert(axum::http::header::AUTHORIZATION, format!("Bearer {secret}").parse().unwrap());
        let caller = TokenStore::open(dir.path()).unwrap().caller(&headers).unwrap();
        assert_eq!((caller.province().as_deref(), caller.commune().as_deref()), (Some("01"), Some("00004")));
        assert!(caller.sees("01", "00004") && !caller.sees("01", "00976") && !caller.sees("79", "26734"));
        headers.insert(axum::http::header::AUTHORIZATION, "Bearer vxp_000000000000_nope".parse().unwrap());
        assert!(store.caller(&headers).is_err());
        assert!(store.create("99", Role::Officer).is_err());
        // Revoked through another handle (the CLI): this store refuses it at once.
        let id = secret.split('_').nth(1).unwrap().to_owned();
        headers.insert(axum::http::header::AUTHORIZATION, format!("Bearer {secret}").parse().unwrap());
        assert!(store.caller(&headers).is_ok());
        assert_eq!(store.list().len(), 1);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(TokenStore::open(dir.path()).unwrap().revoke(&id).unwrap());
        assert!(store.caller(&headers).is_err(), "revoked");
        assert!(store.list().is_empty());
        assert!(store.caller(&HeaderMap::new()).is_err(), "revoking every token does not open the data");
    }

    #[test]
    fn the_authorization_header_is_read_strictly_but_its_scheme_in_any_case() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let secret = store.create("00004", Role::Officer).unwrap();
        let other = store.create("01", Role::Leader).unwrap();
        let with = |values: &[&[u8]], cookie: Option<&str>| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(axum::http::header::AUTHORIZATION, axum::http::HeaderValue::from_bytes(value).unwrap());
            }
            if let Some(token) = cookie {
                headers.insert(axum::http::header::COOKIE, format!("{SESSION_COOKIE}={token}").parse().unwrap());
            }
            store.page_caller(&headers)
        };
        for scheme in ["Bearer", "bearer", "BEARER"] {
            let caller = with(&[format!("{scheme} {secret}").as_bytes()], None).unwrap();
            assert_eq!(caller.unit, "00004", "{scheme}");
        }
        let refused = [
            (
                vec![format!("Bearer {secret}").into_bytes(), format!("Bearer {other}").into_bytes()],
                "one `Authorization`",
            ),
            (vec![format!("Basic {secret}").into_bytes()], "`Basic` scheme"),
            (vec![b"Bearer ".to_vec()], "no token"),
            (vec!["Bearer vxp_\u{e9}".as_bytes().to_vec()], "plain ASCII"),
        ];
        for (values, says) in refused {
            let values: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
            // A broken header is refused even where a valid cookie would have been read.
            let problem = with(&values, Some(&other)).unwrap_err();
            assert_eq!(problem.status, 401);
            assert!(problem.detail.contains(says), "{says}: {}", problem.detail);
        }
        assert_eq!(with(&[], Some(&other)).unwrap().unit, "01", "the cookie without a header");
        // The API reads no cookie, and a page no cookie given twice.
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, format!("{SESSION_COOKIE}={other}").parse().unwrap());
        assert_eq!(store.caller(&headers).unwrap_err().status, 401, "the API takes the header alone");
        headers.insert(
            axum::http::header::COOKIE,
            format!("{SESSION_COOKIE}={other}; {SESSION_COOKIE}={secret}").parse().unwrap(),
        );
        assert!(store.page_caller(&headers).unwrap_err().detail.contains("twice"));
    }
}
