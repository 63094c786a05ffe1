//! The conference access number: one number for every room. A voice menu asks for the room
//! number; then the call moves into that room, whose own PIN prompt (if any) follows.

use crate::live::{CallControl, Conferences};
use crate::media::{Command, MediaHandle};
use crate::prompts::{self, Prompt};
use conclave_store::Store;
use conclave_store::model::Language;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Wrong or missing room numbers before the menu says goodbye.
const TRIES: u32 = 3;
/// How long the menu waits for the next key.
const KEY_TIMEOUT: Duration = Duration::from_secs(15);

/// Everything the menu of one call needs.
pub struct Menu {
    pub call: u64,
    /// The dialled domain: it names the tenant whose rooms are looked up.
    pub domain: String,
    pub from: IpAddr,
    pub language: Language,
    pub store: Store,
    pub conferences: Conferences,
    pub media: MediaHandle,
    pub control: Arc<dyn CallControl>,
}

impl Menu {
    /// Runs the menu until the caller names a room (the call moves there) or gives up.
    pub async fn run(self, mut keys: mpsc::UnboundedReceiver<char>) {
        for _ in 0..TRIES {
            self.say(Prompt::EnterRoom);
            let Some(number) = read_number(&mut keys).await else {
                continue;
            };
            let room = crate::sip::find_room(&self.store, &number, &self.domain).await;
            match room {
                Some(room) if room.pin.is_some() && self.conferences.pin_blocked(self.from) => {
                    self.goodbye(Prompt::NotAllowed).await;
                    return;
                }
                Some(room) => {
                    tracing::info!(
                        call = self.call,
                        room = room.number,
                        "access menu: room chosen"
                    );
                    self.conferences.close_menu(self.call);
                    self.control.enter_room(self.call, room);
                    return;
                }
                None => {
                    self.say(Prompt::NoSuchRoom);
                    tokio::time::sleep(prompt_length(self.language, Prompt::NoSuchRoom)).await;
                }
            }
        }
        self.goodbye(Prompt::Goodbye).await;
    }

    fn say(&self, prompt: Prompt) {
        self.media.send(Command::Play {
            member: self.call,
            samples: prompts::pcm(self.language, prompt),
            rate: prompts::RATE,
            looped: false,
        });
    }

    async fn goodbye(&self, prompt: Prompt) {
        self.say(prompt);
        tokio::time::sleep(prompt_length(self.language, prompt)).await;
        self.conferences.close_menu(self.call);
        self.control.hang_up(self.call);
    }
}

fn prompt_length(language: Language, prompt: Prompt) -> Duration {
    let samples = prompts::pcm(language, prompt).len() as u64;
    Duration::from_millis(samples * 1000 / u64::from(prompts::RATE) + 300)
}

/// Digits up to `#` (at most 12; `*` starts over). `None` when the caller keys nothing in
/// time, or hung up.
async fn read_number(keys: &mut mpsc::UnboundedReceiver<char>) -> Option<String> {
    let mut number = String::new();
    loop {
        let key = tokio::time::timeout(KEY_TIMEOUT, keys.recv())
            .await
            .ok()??;
        match key {
            '#' if !number.is_empty() => return Some(number),
            '*' => number.clear(),
            d if d.is_ascii_digit() && number.len() < 12 => number.push(d),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_number_ends_with_the_hash_key_and_star_starts_over() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for key in ['1', '2', '*', '8', '0', '0', '1', '#'] {
            tx.send(key).unwrap();
        }
        assert_eq!(read_number(&mut rx).await.as_deref(), Some("8001"));
        tx.send('#').unwrap();
        tx.send('7').unwrap();
        tx.send('#').unwrap();
        assert_eq!(
            read_number(&mut rx).await.as_deref(),
            Some("7"),
            "a lone # is ignored"
        );
        drop(tx);
        assert_eq!(read_number(&mut rx).await, None, "hung up");
    }
}
