//! A member's side of a room: its backlog, its live lines, and what it
//! sends.

use super::*;

impl Member {
    pub fn channel(&self) -> &str {
        &self.room.name
    }

    /// Who the member is now: `None` if anonymous or signed out since.
    pub fn user(&self) -> Option<User> {
        self.standing.as_ref().and_then(Standing::user)
    }

    /// Completes once when this member's session ends (logout, password
    /// change, account deleted): tell the client, which stays connected as
    /// a reader. Never completes for anonymous members.
    pub fn sign_out(&self) -> SignOut {
        self.standing
            .as_ref()
            .map_or_else(SignOut::never, Standing::sign_out)
    }

    /// History (oldest first) and the current live state and viewer count:
    /// send these before anything [`recv`](Self::recv) yields.
    pub fn take_backlog(&mut self) -> Vec<Line> {
        std::mem::take(&mut self.backlog)
    }

    /// The next line for this member; `None` once the room is gone. A member
    /// that fell more than the room's buffer behind skips ahead.
    pub async fn recv(&mut self) -> Option<Line> {
        loop {
            match self.events.recv().await {
                Ok(line) => return Some(line),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(channel = %self.room.name, skipped = n, "chat member too slow");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Non-blocking [`recv`](Self::recv) for callers that poll.
    pub fn try_recv(&mut self) -> Option<Line> {
        loop {
            match self.events.try_recv() {
                Ok(line) => return Some(line),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Handles one message from the client (`{"type":"chat","text":"..."}`).
    /// Returns a line for this member only (an error), or `None` when the
    /// message was posted (everyone, this member included, gets it through
    /// [`recv`](Self::recv)) or needs no answer.
    pub async fn handle(&self, raw: &str) -> Option<Line> {
        let msg = match ClientMessage::parse(raw) {
            Ok(Some(m)) => m,
            Ok(None) => return None,
            Err(e) => return Some(error_line(&e.to_string())),
        };
        match msg {
            ClientMessage::Chat { text } => {
                let user = match &self.standing {
                    None => return Some(error_line(&ChatError::NotSignedIn.to_string())),
                    Some(s) => match s.user() {
                        Some(u) => u,
                        None => return Some(error_line(&ChatError::SignedOut.to_string())),
                    },
                };
                match self.rooms.post(&self.room.name, &user, &text).await {
                    Ok(_) => None,
                    Err(ChatError::Db(e)) => {
                        tracing::error!("chat post failed: {e}");
                        Some(error_line("message not sent: database unavailable"))
                    }
                    Err(e) => Some(error_line(&e.to_string())),
                }
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.room.members.fetch_sub(1, Ordering::Relaxed);
    }
}
