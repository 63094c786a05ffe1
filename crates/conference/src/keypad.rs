//! Keypad commands for phone users: `*` then a digit. The command is applied like any other,
//! through the one permission check, with the member's own role.
//!
//! | keys | command | who |
//! |---|---|---|
//! | `*6` | mute / unmute oneself | everyone (unmuting is refused while forbidden to speak) |
//! | `*1` | raise / lower one's hand | everyone |
//! | `*5` | lock / unlock the meeting | chairs (chairman and above) |
//! | `*7` | start / stop recording | chairs |
//! | `*9` | mute all / unmute all (below chairman) | chairs |
//! | `*8` | hear how many are in the meeting | everyone |

use crate::live::{Command, Member};

/// Collects digits per member until they form a command.
#[derive(Debug, Default, Clone)]
pub struct Keypad {
    star: bool,
    /// The last mass-mute this member asked for, so `*9` toggles.
    muted_all: bool,
}

impl Keypad {
    /// Feeds a digit; returns the command it completes, if any.
    pub fn digit(
        &mut self,
        digit: char,
        member: &Member,
        locked: bool,
        recording: bool,
    ) -> Option<Command> {
        if digit == '*' {
            self.star = true;
            return None;
        }
        if !std::mem::take(&mut self.star) {
            return None;
        }
        match digit {
            '6' if member.muted => Some(Command::UnmuteSelf),
            '6' => Some(Command::MuteSelf),
            '1' => Some(Command::RaiseHand {
                raised: !member.hand_raised,
            }),
            '8' => Some(Command::Count),
            '5' if locked => Some(Command::Unlock),
            '5' => Some(Command::Lock),
            '7' => Some(Command::Record { on: !recording }),
            '9' => {
                self.muted_all = !self.muted_all;
                Some(if self.muted_all {
                    Command::MuteAll
                } else {
                    Command::UnmuteAll
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::JoinedVia;
    use crate::permissions::Role;

    fn member(muted: bool) -> Member {
        Member {
            id: 1,
            name: "m".into(),
            number: "1".into(),
            role: Role::Member,
            via: JoinedVia::DialIn,
            muted,
            may_speak: true,
            hand_raised: false,
            whisper_group: None,
            talking: false,
        }
    }

    #[test]
    fn star_then_digit_makes_a_command() {
        let mut k = Keypad::default();
        assert_eq!(
            k.digit('6', &member(false), false, false),
            None,
            "a digit alone does nothing"
        );
        assert_eq!(k.digit('*', &member(false), false, false), None);
        assert_eq!(
            k.digit('6', &member(false), false, false),
            Some(Command::MuteSelf)
        );
        k.digit('*', &member(true), false, false);
        assert_eq!(
            k.digit('6', &member(true), false, false),
            Some(Command::UnmuteSelf)
        );
        k.digit('*', &member(true), true, false);
        assert_eq!(
            k.digit('5', &member(true), true, false),
            Some(Command::Unlock)
        );
        k.digit('*', &member(true), false, false);
        assert_eq!(
            k.digit('9', &member(true), false, false),
            Some(Command::MuteAll)
        );
        k.digit('*', &member(true), false, false);
        assert_eq!(
            k.digit('9', &member(true), false, false),
            Some(Command::UnmuteAll)
        );
        k.digit('*', &member(true), false, false);
        assert_eq!(
            k.digit('8', &member(true), false, false),
            Some(Command::Count)
        );
        k.digit('*', &member(true), false, false);
        assert_eq!(
            k.digit('7', &member(true), false, false),
            Some(Command::Record { on: true })
        );
        k.digit('*', &member(true), false, true);
        assert_eq!(
            k.digit('7', &member(true), false, true),
            Some(Command::Record { on: false })
        );
        k.digit('*', &member(true), false, false);
        assert_eq!(k.digit('#', &member(true), false, false), None);
    }
}
