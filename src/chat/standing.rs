//! Who a signed-in chat member is, kept current while the socket is open.
//! A member is signed in with one session; when that session ends (logout,
//! a password change or reset, the account deleted, the session cap) or the
//! user's role changes, the account code tells [`Standings`] and every open
//! WebSocket and data channel of that user sees it at once: a revoked member
//! is read-only from then on, and a demoted moderator loses the moderator's
//! exemptions (bans, slow mode) with the next message.

use crate::db::{Role, User};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Open signed-in members by user id. Entries live exactly as long as
/// their [`Standing`], so the table is bounded by the open chat sockets
/// and data channels, which the connection caps bound.
#[derive(Default)]
pub struct Standings {
    next: AtomicU64,
    by_user: Mutex<HashMap<i64, Vec<Seat>>>,
}

struct Seat {
    id: u64,
    session: String,
    tx: watch::Sender<Option<User>>,
}

/// One member's view of who they are: `None` once their session ended.
pub struct Standing {
    standings: Arc<Standings>,
    user_id: i64,
    id: u64,
    rx: watch::Receiver<Option<User>>,
}

/// See [`Standing::sign_out`].
pub struct SignOut {
    /// `None` for an anonymous member: never signed out.
    rx: Option<watch::Receiver<Option<User>>>,
    reported: bool,
}

impl SignOut {
    /// For a member that was never signed in.
    pub fn never() -> SignOut {
        SignOut {
            rx: None,
            reported: false,
        }
    }

    /// Completes when the session ends (at once if it ended before and
    /// this was not reported yet); never again after that, and never while
    /// the member stays signed in. Cancel-safe.
    pub async fn wait(&mut self) {
        let Some(rx) = self.rx.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            if self.reported {
                return std::future::pending().await;
            }
            if rx.borrow_and_update().is_none() {
                self.reported = true;
                return;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

impl Standings {
    /// Registers a member signed in as `user` with `session` (a token hash).
    pub fn seat(self: &Arc<Self>, user: User, session: String) -> Standing {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let user_id = user.id;
        let (tx, rx) = watch::channel(Some(user));
        self.by_user
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(user_id)
            .or_default()
            .push(Seat { id, session, tx });
        Standing {
            standings: self.clone(),
            user_id,
            id,
            rx,
        }
    }

    fn each(&self, user_id: i64, mut f: impl FnMut(&Seat)) {
        let map = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        for seat in map.get(&user_id).into_iter().flatten() {
            f(seat);
        }
    }

    /// One session ended (logout, the session cap).
    pub fn end_session(&self, user_id: i64, session: &str) {
        self.each(user_id, |s| {
            if s.session == session {
                s.tx.send_replace(None);
            }
        });
    }

    /// Every session of the user but `keep` ended (a password change keeps
    /// the session that made it; a reset or deletion keeps none).
    pub fn end_sessions(&self, user_id: i64, keep: Option<&str>) {
        self.each(user_id, |s| {
            if Some(s.session.as_str()) != keep {
                s.tx.send_replace(None);
            }
        });
    }

    /// The user's role changed.
    pub fn set_role(&self, user_id: i64, role: Role) {
        self.each(user_id, |s| {
            s.tx.send_if_modified(|u| match u {
                Some(u) if u.role != role => {
                    u.role = role;
                    true
                }
                _ => false,
            });
        });
    }

    /// Members seated now (for tests and metrics).
    pub fn len(&self) -> usize {
        let map = self.by_user.lock().unwrap_or_else(|e| e.into_inner());
        map.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Standing {
    /// Who the member is now; `None` once signed out.
    pub fn user(&self) -> Option<User> {
        self.rx.borrow().clone()
    }

    /// A handle that completes when this member's session ends, for the
    /// loop that serves the member's socket.
    pub fn sign_out(&self) -> SignOut {
        SignOut {
            rx: Some(self.rx.clone()),
            reported: false,
        }
    }

    /// Ends this member's sign-in from the inside (its session turned out
    /// to be gone already when it joined).
    pub fn revoke(&self) {
        self.standings.each(self.user_id, |s| {
            if s.id == self.id {
                s.tx.send_replace(None);
            }
        });
    }

    /// Refreshes the user (role) from the database's answer.
    pub fn refresh(&self, user: User) {
        self.standings.each(self.user_id, |s| {
            if s.id == self.id {
                s.tx.send_if_modified(|u| match u {
                    Some(old) if *old != user => {
                        *old = user.clone();
                        true
                    }
                    _ => false,
                });
            }
        });
    }
}

impl Drop for Standing {
    fn drop(&mut self) {
        let mut map = self
            .standings
            .by_user
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(seats) = map.get_mut(&self.user_id) {
            seats.retain(|s| s.id != self.id);
            if seats.is_empty() {
                map.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn user(id: i64, role: Role) -> User {
        User {
            id,
            username: format!("u{id}"),
            role,
            email: None,
            email_verified: false,
            created_at: 0,
            deleted_at: None,
            suspended: false,
        }
    }

    #[tokio::test]
    async fn ending_a_session_signs_out_only_its_members() {
        let s = Arc::new(Standings::default());
        let a = s.seat(user(1, Role::Viewer), "sa".into());
        let mut out = a.sign_out();
        let b = s.seat(user(1, Role::Viewer), "sb".into());
        let other = s.seat(user(2, Role::Viewer), "sa".into());
        s.end_session(1, "sa");
        tokio::time::timeout(Duration::from_secs(1), out.wait())
            .await
            .expect("told at once");
        assert!(a.user().is_none());
        assert!(b.user().is_some());
        assert!(other.user().is_some(), "same token text, other user");
        // Reported once only.
        assert!(tokio::time::timeout(Duration::from_millis(50), out.wait())
            .await
            .is_err());
        s.end_sessions(1, Some("sb"));
        assert!(b.user().is_some(), "the kept session");
        s.end_sessions(1, None);
        assert!(b.user().is_none());
        drop((a, b, other));
        assert!(s.is_empty());
    }

    #[tokio::test]
    async fn role_changes_reach_open_members() {
        let s = Arc::new(Standings::default());
        let m = s.seat(user(3, Role::Moderator), "s".into());
        s.set_role(3, Role::Viewer);
        assert_eq!(m.user().unwrap().role, Role::Viewer);
    }
}
