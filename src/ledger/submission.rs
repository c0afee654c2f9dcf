//! One submission to the engine: a caller's commands, already in their envelopes.
//!
//! The engine's writer decides a batch of envelopes. It used to move every submitted
//! command into an envelope of its own, on its thread, while the caller waited: ~1% of
//! the server's CPU on the redemption path, all of it on the writer, the one thread a
//! batch cannot be spread over (issue 12). A `Submission` is built by the caller instead
//! (the network thread, while it parses), and a batch of one submission (one
//! `PostInvoices` call, the usual large batch at one connection) is decided where it
//! lies; a batch of several (concurrent calls) is moved into the writer's room, one
//! submission after another, as the commands were before.
//!
//! Time is the writer's to give, never the caller's: an envelope's `at` is a placeholder
//! until the writer takes the submission off its queue and sets the time of every
//! envelope in it ([`Submission::stamp`]), so a caller cannot choose when its commands
//! happened and time never runs backwards in the log.

use crate::domain::{Command, Envelope, Origin, Timestamp};

/// A caller's commands in order, each in an envelope with the caller's origin.
#[derive(Debug, PartialEq)]
pub struct Submission {
    origin: Origin,
    envelopes: Vec<Envelope>,
}

impl Submission {
    /// An empty submission from `origin`, with room for `room` commands (the room a whole
    /// batch needs, so that appending its later part moves nothing already here).
    pub fn with_room(origin: Origin, room: usize) -> Submission {
        Submission {
            origin,
            envelopes: Vec::with_capacity(room),
        }
    }

    /// `commands` from `origin`, in order.
    pub fn of(origin: Origin, commands: Vec<Command>) -> Submission {
        let mut submission = Submission::with_room(origin, commands.len());
        for command in commands {
            submission.push(command);
        }
        submission
    }

    /// Adds `command` after the others. Its time is set when the writer takes it.
    pub fn push(&mut self, command: Command) {
        // A placeholder: `stamp` overwrites it before anything decides the envelope.
        let unstamped = Timestamp(0);
        self.envelopes.push(Envelope::from_origin(
            unstamped,
            self.origin.clone(),
            command,
        ));
    }

    /// Adds the commands of `later` (the rest of the same call, built apart) after these.
    /// Each keeps the origin it was built with.
    pub fn append(&mut self, mut later: Submission) {
        self.envelopes.append(&mut later.envelopes);
    }

    pub fn len(&self) -> usize {
        self.envelopes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.envelopes.is_empty()
    }

    /// Sets the time of every envelope to `at`: the writer's, as it takes the submission.
    pub(super) fn stamp(&mut self, at: Timestamp) {
        for envelope in &mut self.envelopes {
            envelope.at = at;
        }
    }

    /// The envelopes, to be decided where they lie (a batch of this submission alone).
    pub(super) fn envelopes(&self) -> &[Envelope] {
        &self.envelopes
    }

    /// Moves the envelopes to the end of `batch` (a batch of several submissions).
    pub(super) fn move_into(&mut self, batch: &mut Vec<Envelope>) {
        batch.append(&mut self.envelopes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Principal, PrincipalRole, Reason};

    fn origin(name: &str) -> Origin {
        Origin::new(
            Principal::from_stored(PrincipalRole::Bureau, name).expect("a valid name"),
            None,
        )
    }

    fn command(text: &str) -> Command {
        Command::ConfirmClock {
            reason: Reason::parse(text).expect("a valid reason"),
        }
    }

    #[test]
    fn given_commands_when_submitted_then_each_is_in_an_envelope_with_the_origin_in_order() {
        let submission = Submission::of(origin("bureau-1"), vec![command("a"), command("b")]);

        let commands: Vec<&Command> = submission
            .envelopes()
            .iter()
            .map(|envelope| &envelope.command)
            .collect();
        assert_eq!(commands, [&command("a"), &command("b")]);
        assert!(submission
            .envelopes()
            .iter()
            .all(|envelope| envelope.origin == origin("bureau-1")));
    }

    #[test]
    fn given_two_parts_of_a_call_when_appended_then_the_later_follows_and_keeps_its_origin() {
        let mut first = Submission::with_room(origin("bureau-1"), 3);
        first.push(command("a"));
        let mut later = Submission::with_room(origin("bureau-2"), 2);
        later.push(command("b"));
        later.push(command("c"));
        let room = first.envelopes.capacity();

        first.append(later);

        assert_eq!(first.len(), 3);
        assert_eq!(
            first.envelopes.capacity(),
            room,
            "the room was enough: nothing moved"
        );
        let origins: Vec<&Origin> = first
            .envelopes()
            .iter()
            .map(|envelope| &envelope.origin)
            .collect();
        assert_eq!(
            origins,
            [
                &origin("bureau-1"),
                &origin("bureau-2"),
                &origin("bureau-2")
            ]
        );
    }

    #[test]
    fn given_envelopes_with_any_time_when_stamped_then_every_one_has_the_writers_time() {
        let mut submission = Submission::of(origin("bureau-1"), vec![command("a"), command("b")]);
        submission.envelopes[1].at = Timestamp(99);

        submission.stamp(Timestamp(1_700_000_000_000));

        assert!(submission
            .envelopes()
            .iter()
            .all(|envelope| envelope.at == Timestamp(1_700_000_000_000)));
    }

    #[test]
    fn given_a_batch_when_a_submission_moves_into_it_then_it_follows_and_the_submission_is_empty() {
        let mut batch = Submission::of(origin("bureau-1"), vec![command("a")]).envelopes;
        let mut submission = Submission::of(origin("bureau-1"), vec![command("b")]);

        submission.move_into(&mut batch);

        assert_eq!(batch.len(), 2);
        assert_eq!(batch[1].command, command("b"));
        assert!(submission.is_empty());
    }
}
