//! Meeting roles and the permission matrix, kept as data.
//!
//! `docs/permissions.md` holds the same matrix; a test renders [`MATRIX`] and compares it with
//! the document so the two cannot drift apart.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A member's role in a meeting, from the most to the least powerful.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Participant,
    Member,
    Chairman,
    Manager,
    Owner,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Manager,
        Role::Chairman,
        Role::Member,
        Role::Participant,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Manager => "manager",
            Role::Chairman => "chairman",
            Role::Member => "member",
            Role::Participant => "participant",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}; expected one of owner, manager, chairman, member, participant")]
pub struct UnknownRole(pub String);

/// Something a member may want to do in a live meeting (or to its stored template).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Unmute oneself (refused separately while the member is forbidden to speak).
    SpeakSelf,
    MuteSelf,
    RaiseHand,
    ViewRoster,
    InviteMember,
    RedialMissing,
    MuteMember,
    UnmuteMember,
    MuteAll,
    SetMemberSpeak,
    KickMember,
    SetMemberRole,
    Lock,
    Record,
    Stream,
    WhisperGroup,
    /// Choose the video layout, pin members to tiles, set polling, stop anyone's share.
    SetLayout,
    /// Share one's screen (when the meeting lets members share).
    ShareScreen,
    /// Draw on the whiteboard another member presents (its presenter draws on it anyway).
    DrawOnBoard,
    EndMeeting,
    EditTemplate,
}

/// Whether an action aimed at another member needs the actor to outrank the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Acts on oneself or on the meeting as a whole.
    None,
    /// Acts on another member, who must rank strictly lower than the actor.
    LowerRank,
}

/// One row of the matrix: the action, what it aims at, and the roles allowed (in [`Role::ALL`]
/// order: owner, manager, chairman, member, participant).
pub struct Rule {
    pub action: Action,
    pub label: &'static str,
    pub target: Target,
    pub allowed: [bool; 5],
}

const Y: bool = true;
const N: bool = false;

/// The permission matrix. Order of `allowed`: owner, manager, chairman, member, participant.
#[rustfmt::skip]
pub const MATRIX: &[Rule] = &[
    rule(Action::SpeakSelf, "unmute oneself (unless forbidden to speak)", Target::None, [Y, Y, Y, Y, Y]),
    rule(Action::MuteSelf, "mute oneself", Target::None, [Y, Y, Y, Y, Y]),
    rule(Action::RaiseHand, "raise hand", Target::None, [Y, Y, Y, Y, Y]),
    rule(Action::ViewRoster, "see the roster", Target::None, [Y, Y, Y, Y, Y]),
    rule(Action::InviteMember, "invite (call) one more person", Target::None, [Y, Y, Y, Y, N]),
    rule(Action::RedialMissing, "call again everyone not connected", Target::None, [Y, Y, Y, N, N]),
    rule(Action::MuteMember, "mute another member", Target::LowerRank, [Y, Y, Y, N, N]),
    rule(Action::UnmuteMember, "unmute another member", Target::LowerRank, [Y, Y, Y, N, N]),
    rule(Action::MuteAll, "mute all / unmute all (members below chairman)", Target::None, [Y, Y, Y, N, N]),
    rule(Action::SetMemberSpeak, "allow / forbid another member to speak", Target::LowerRank, [Y, Y, Y, N, N]),
    rule(Action::KickMember, "remove a member", Target::LowerRank, [Y, Y, Y, N, N]),
    rule(Action::SetMemberRole, "change a member's role (to a role below one's own)", Target::LowerRank, [Y, Y, Y, N, N]),
    rule(Action::Lock, "lock / unlock the meeting", Target::None, [Y, Y, Y, N, N]),
    rule(Action::Record, "start / stop recording", Target::None, [Y, Y, Y, N, N]),
    rule(Action::Stream, "start / stop a live stream", Target::None, [Y, Y, Y, N, N]),
    rule(Action::WhisperGroup, "open / close a whisper group", Target::None, [Y, Y, Y, N, N]),
    rule(Action::SetLayout, "set the video layout, pins and polling; stop a share", Target::None, [Y, Y, Y, N, N]),
    rule(Action::ShareScreen, "share one's screen (unless the chair keeps sharing to chairs)", Target::None, [Y, Y, Y, Y, Y]),
    rule(Action::DrawOnBoard, "draw on the whiteboard someone presents (the presenter draws on their own)", Target::None, [Y, Y, Y, N, N]),
    rule(Action::EndMeeting, "end the meeting", Target::None, [Y, Y, Y, N, N]),
    rule(Action::EditTemplate, "edit the meeting's template", Target::None, [Y, Y, N, N, N]),
];

const fn rule(action: Action, label: &'static str, target: Target, allowed: [bool; 5]) -> Rule {
    Rule {
        action,
        label,
        target,
        allowed,
    }
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("a {role} may not {what}")]
    Role { role: Role, what: &'static str },
    #[error("a {actor} may not act on a {target}: the target must rank below the actor")]
    Rank { actor: Role, target: Role },
    #[error("a {actor} may not give the role {new}: only roles below one's own can be given")]
    Grant { actor: Role, new: Role },
}

fn rule_for(action: Action) -> &'static Rule {
    MATRIX
        .iter()
        .find(|r| r.action == action)
        .unwrap_or(&MATRIX[0]) // unreachable: every action has a row (asserted by a test)
}

fn role_index(role: Role) -> usize {
    Role::ALL.iter().position(|r| *r == role).unwrap_or(0)
}

/// The single permission check. `target` is the role of the member acted upon, when the action
/// aims at one. Every channel (REST, WebSocket, keypad, SIP) calls this.
pub fn check(actor: Role, action: Action, target: Option<Role>) -> Result<(), Denied> {
    let rule = rule_for(action);
    if !rule.allowed[role_index(actor)] {
        return Err(Denied::Role {
            role: actor,
            what: rule.label,
        });
    }
    if let (Target::LowerRank, Some(target)) = (rule.target, target)
        && target >= actor
    {
        return Err(Denied::Rank { actor, target });
    }
    Ok(())
}

/// Changing a role: the general check, plus the new role must rank below the actor's own.
pub fn check_role_change(actor: Role, target: Role, new: Role) -> Result<(), Denied> {
    check(actor, Action::SetMemberRole, Some(target))?;
    if new >= actor {
        return Err(Denied::Grant { actor, new });
    }
    Ok(())
}

/// The matrix as the Markdown table kept in `docs/permissions.md`.
pub fn matrix_markdown() -> String {
    let mut out = String::from("| action | owner | manager | chairman | member | participant |\n");
    out.push_str("|---|:-:|:-:|:-:|:-:|:-:|\n");
    for rule in MATRIX {
        out.push_str("| ");
        out.push_str(rule.label);
        if rule.target == Target::LowerRank {
            out.push_str(" ¹");
        }
        out.push_str(" |");
        for allowed in rule.allowed {
            out.push_str(if allowed { " ✓ |" } else { " — |" });
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTIONS: [Action; 21] = [
        Action::SpeakSelf,
        Action::MuteSelf,
        Action::RaiseHand,
        Action::ViewRoster,
        Action::InviteMember,
        Action::RedialMissing,
        Action::MuteMember,
        Action::UnmuteMember,
        Action::MuteAll,
        Action::SetMemberSpeak,
        Action::KickMember,
        Action::SetMemberRole,
        Action::Lock,
        Action::Record,
        Action::Stream,
        Action::WhisperGroup,
        Action::SetLayout,
        Action::ShareScreen,
        Action::DrawOnBoard,
        Action::EndMeeting,
        Action::EditTemplate,
    ];

    #[test]
    fn every_action_has_exactly_one_rule() {
        for action in ACTIONS {
            assert_eq!(
                MATRIX.iter().filter(|r| r.action == action).count(),
                1,
                "{action:?}"
            );
        }
        assert_eq!(MATRIX.len(), ACTIONS.len());
    }

    #[test]
    fn chair_mutes_member_but_member_cannot_mute() {
        assert!(check(Role::Chairman, Action::MuteMember, Some(Role::Member)).is_ok());
        assert!(matches!(
            check(Role::Member, Action::MuteMember, Some(Role::Participant)),
            Err(Denied::Role { .. })
        ));
    }

    #[test]
    fn targets_must_rank_lower() {
        assert_eq!(
            check(Role::Chairman, Action::KickMember, Some(Role::Manager)),
            Err(Denied::Rank {
                actor: Role::Chairman,
                target: Role::Manager
            })
        );
        assert!(check(Role::Chairman, Action::KickMember, Some(Role::Chairman)).is_err());
        assert!(check(Role::Owner, Action::KickMember, Some(Role::Manager)).is_ok());
    }

    #[test]
    fn roles_can_only_be_granted_below_ones_own() {
        assert!(check_role_change(Role::Manager, Role::Member, Role::Chairman).is_ok());
        assert!(check_role_change(Role::Chairman, Role::Member, Role::Chairman).is_err());
        assert!(check_role_change(Role::Owner, Role::Member, Role::Owner).is_err());
        assert!(check_role_change(Role::Member, Role::Participant, Role::Participant).is_err());
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().ok(), Some(role));
        }
        assert!("boss".parse::<Role>().is_err());
    }

    #[test]
    fn docs_table_matches_the_code() {
        let doc = include_str!("../../../docs/permissions.md");
        let table = matrix_markdown();
        assert!(
            doc.contains(&table),
            "docs/permissions.md is out of date; paste this table into it:\n{table}"
        );
    }
}
