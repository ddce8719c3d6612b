//! The server's own rules on who may publish on a channel, checked at every
//! publish (RTMP, WHIP, Icecast) before any webhook is asked: the owner's
//! role must stream, and with `--require-verified-email` their address
//! must be verified. Channels made by the operator have no owner and
//! always may. Read from the database each time, so a role or address
//! changed a moment ago counts at once.

use crate::db::{Db, Publisher};
use std::net::IpAddr;

pub struct PublishRules {
    db: Db,
    require_verified_email: bool,
}

impl PublishRules {
    pub fn new(db: Db, require_verified_email: bool) -> PublishRules {
        PublishRules {
            db,
            require_verified_email,
        }
    }

    /// `Err` holds the reason to give the publisher.
    pub async fn check(&self, channel: &str, protocol: &str, remote: IpAddr) -> Result<(), String> {
        let publisher = match self.db.publisher(channel).await {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(channel, "cannot read the channel's owner: {e}");
                return Err("cannot check the account now; try again".into());
            }
        };
        let refusal = match publisher {
            // The stream key already named the channel; with no owner row
            // there is nobody to judge.
            None | Some(Publisher::Operator) => None,
            Some(Publisher::Owner {
                suspended: true, ..
            }) => Some("this account is suspended"),
            Some(Publisher::Owner { role, .. }) if !role.streams() => {
                Some(crate::http::NOT_YET_STREAMING)
            }
            Some(Publisher::Owner {
                email_verified: false,
                ..
            }) if self.require_verified_email => {
                Some("verify the account's email address to stream (this server requires it)")
            }
            Some(Publisher::Owner { .. }) => None,
        };
        match refusal {
            None => Ok(()),
            Some(why) => {
                tracing::info!(channel, protocol, %remote, "publish refused: {why}");
                Err(why.into())
            }
        }
    }
}
