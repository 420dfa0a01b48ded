//! The team server's rows: the people who signed in (each one's Bitrix24 refresh token,
//! sealed by the team wing before it gets here), the MCP clients that registered, and a hash
//! of every token the server handed out. No token is ever stored in the clear.

use rusqlite::{OptionalExtension, params};

use super::{Ledger, Unavailable};
use crate::pipeline::approval::now;

/// What a token this server issued lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Shown once after sign-in, for clients configured with a static header.
    Personal,
    /// Issued to an MCP client through the authorization endpoints.
    Access,
    /// Trades for a new access token at the token endpoint.
    Refresh,
    /// The cookie of a browser that signed in (the approval page).
    Browser,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Personal => "personal",
            Self::Access => "access",
            Self::Refresh => "refresh",
            Self::Browser => "browser",
        }
    }
}

/// One issued token, by its hash.
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub member_id: String,
    pub user_id: u64,
    pub client_id: Option<String>,
    pub audience: String,
    pub expires_at: u64,
    pub revoked: bool,
}

/// A registered MCP client.
#[derive(Debug, Clone)]
pub struct ClientRow {
    pub client_id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
}

impl Ledger {
    /// Keeps a person's name and sealed refresh token (replacing the rotated one).
    pub async fn keep_person(
        &self,
        member_id: &str,
        user_id: u64,
        name: &str,
        sealed: Vec<u8>,
    ) -> Result<(), Unavailable> {
        let (member_id, name) = (member_id.to_owned(), name.to_owned());
        self.write(move |c| {
            c.execute(
                "INSERT INTO people (member_id, user_id, name, refresh_sealed, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (member_id, user_id) DO UPDATE SET \
                 name = CASE WHEN excluded.name = '' THEN name ELSE excluded.name END, \
                 refresh_sealed = excluded.refresh_sealed, updated_at = excluded.updated_at",
                params![member_id, user_id as i64, name, sealed, now() as i64],
            )?;
            Ok(())
        })
        .await
    }

    /// Names a person as the portal does.
    pub async fn rename_person(
        &self,
        member_id: &str,
        user_id: u64,
        name: &str,
    ) -> Result<(), Unavailable> {
        let (member_id, name) = (member_id.to_owned(), name.to_owned());
        self.write(move |c| {
            c.execute(
                "UPDATE people SET name = ?3 WHERE member_id = ?1 AND user_id = ?2",
                params![member_id, user_id as i64, name],
            )?;
            Ok(())
        })
        .await
    }

    /// A person's name and sealed refresh token.
    pub async fn person(
        &self,
        member_id: &str,
        user_id: u64,
    ) -> Result<Option<(String, Vec<u8>)>, Unavailable> {
        let member_id = member_id.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT name, refresh_sealed FROM people WHERE member_id = ?1 AND user_id = ?2",
                params![member_id, user_id as i64],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
        })
        .await
    }

    pub async fn add_token(
        &self,
        hash: String,
        kind: TokenKind,
        row: TokenRow,
    ) -> Result<(), Unavailable> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO tokens (hash, kind, member_id, user_id, client_id, audience, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    hash,
                    kind.as_str(),
                    row.member_id,
                    row.user_id as i64,
                    row.client_id,
                    row.audience,
                    now() as i64,
                    row.expires_at as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// The token with this hash, if it is of `kind`.
    pub async fn token(
        &self,
        hash: &str,
        kind: TokenKind,
    ) -> Result<Option<TokenRow>, Unavailable> {
        let hash = hash.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT member_id, user_id, client_id, audience, expires_at, revoked_at FROM tokens \
                 WHERE hash = ?1 AND kind = ?2",
                params![hash, kind.as_str()],
                |r| {
                    Ok(TokenRow {
                        member_id: r.get(0)?,
                        user_id: r.get::<_, i64>(1)? as u64,
                        client_id: r.get(2)?,
                        audience: r.get(3)?,
                        expires_at: r.get::<_, i64>(4)? as u64,
                        revoked: r.get::<_, Option<i64>>(5)?.is_some(),
                    })
                },
            )
            .optional()?)
        })
        .await
    }

    /// Revokes the token with this hash; with `family`, every token the same client was given
    /// for the same person (a refresh token's access tokens go with it). Returns how many.
    pub async fn revoke_token(&self, hash: &str, family: bool) -> Result<usize, Unavailable> {
        let hash = hash.to_owned();
        self.write(move |c| {
            let at = now() as i64;
            let one = c.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE hash = ?1 AND revoked_at IS NULL",
                params![hash, at],
            )?;
            if !family {
                return Ok(one);
            }
            let more = c.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE revoked_at IS NULL AND client_id IS NOT NULL \
                 AND (member_id, user_id, client_id) IN \
                 (SELECT member_id, user_id, client_id FROM tokens WHERE hash = ?1)",
                params![hash, at],
            )?;
            Ok(one + more)
        })
        .await
    }

    /// Revokes every personal token a person holds (a new sign-in replaces the old one).
    pub async fn revoke_personal(
        &self,
        member_id: &str,
        user_id: u64,
    ) -> Result<usize, Unavailable> {
        let member_id = member_id.to_owned();
        self.write(move |c| {
            Ok(c.execute(
                "UPDATE tokens SET revoked_at = ?3 WHERE member_id = ?1 AND user_id = ?2 \
                 AND kind = 'personal' AND revoked_at IS NULL",
                params![member_id, user_id as i64, now() as i64],
            )?)
        })
        .await
    }

    pub async fn register_client(&self, client: ClientRow) -> Result<(), Unavailable> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO clients (client_id, name, redirect_uris, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![
                    client.client_id,
                    client.name,
                    serde_json::to_string(&client.redirect_uris).unwrap_or_default(),
                    now() as i64
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn client(&self, client_id: &str) -> Result<Option<ClientRow>, Unavailable> {
        let client_id = client_id.to_owned();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT client_id, name, redirect_uris FROM clients WHERE client_id = ?1",
                params![client_id],
                |r| {
                    let uris: String = r.get(2)?;
                    Ok(ClientRow {
                        client_id: r.get(0)?,
                        name: r.get(1)?,
                        redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
                    })
                },
            )
            .optional()?)
        })
        .await
    }
}
