//! The sign-up policy applied to one new account, whether it comes with a
//! password (`auth::register`) or through a provider (`oidc::signup`).

use super::{ApiError, AppState};
use crate::auth::{self, Registration};
use crate::db::{Role, User};

/// The sign-up policy applied to one new account, password or provider
/// alike: checked before the costly work, the invite spent only after it.
pub(super) struct Admission {
    invite: Option<String>,
}

/// An admission spent: the new account's role, and the invite to mark
/// used (or give back if the account cannot be made).
pub(super) struct Spent {
    invite: Option<i64>,
    pub role: Role,
}

fn bad_invite() -> ApiError {
    ApiError::Forbidden("this invite is invalid, used or expired".into())
}

impl Admission {
    pub async fn check(s: &AppState, invite: Option<&str>) -> Result<Admission, ApiError> {
        let invite = invite.map(auth::token_hash);
        match (s.signup.registration, &invite) {
            (Registration::Closed, _) => {
                return Err(ApiError::Forbidden(
                    "registration is closed on this server".into(),
                ))
            }
            (Registration::Invite, None) => {
                return Err(ApiError::Forbidden(
                    "registration on this server needs an invite".into(),
                ))
            }
            (_, Some(h)) if s.db.invite_role(h).await?.is_none() => return Err(bad_invite()),
            _ => {}
        }
        Ok(Admission { invite })
    }

    pub async fn spend(self, s: &AppState) -> Result<Spent, ApiError> {
        let spent = match &self.invite {
            Some(h) => Some(s.db.spend_invite(h).await?.ok_or_else(bad_invite)?),
            None => None,
        };
        let mut role = if s.signup.open_streaming {
            Role::Broadcaster
        } else {
            Role::Viewer
        };
        if let Some((_, granted)) = spent {
            if granted.streams() {
                role = granted;
            }
        }
        Ok(Spent {
            invite: spent.map(|(id, _)| id),
            role,
        })
    }
}

impl Spent {
    /// Marks the invite used by the account made, or gives it back.
    pub async fn settle(
        self,
        s: &AppState,
        created: Result<(User, crate::db::ChannelRow), crate::db::DbError>,
        username: &str,
    ) -> Result<(User, crate::db::ChannelRow), ApiError> {
        match created {
            Ok(made) => {
                if let Some(invite) = self.invite {
                    s.db.invite_used_by(invite, made.0.id).await?;
                }
                Ok(made)
            }
            Err(e) => {
                if let Some(invite) = self.invite {
                    s.db.release_invite(invite).await?;
                }
                Err(match e {
                    crate::db::DbError::Conflict(what) if what.starts_with("identity") => {
                        ApiError::Conflict("this identity has an account already: sign in".into())
                    }
                    crate::db::DbError::Conflict(_) => {
                        ApiError::Conflict(format!("username {username:?} is taken"))
                    }
                    e => e.into(),
                })
            }
        }
    }
}
