//! The client's failure policy, in one place: what a failed connect means, and what comes next.
//!
//! This module mirrors the Python SDK's `thalovant.runtime.policy` section by section, with the
//! same small tables; a change to one is a change to both (and to the other SDKs).
//!
//! **1. Judging one connect attempt.** An attempt fails at a [`Stage`] with some [`Evidence`];
//! [`judge`] turns the pair (and whether the attempt was KK, and whether this connect already
//! retried fresh) into a [`Verdict`]:
//!
//! | evidence \ stage   | Opening  | Negotiating | Handshake        | Finishing            | Settling    |
//! |--------------------|----------|-------------|------------------|----------------------|-------------|
//! | Refusal            | Refused  | Refused     | KK: XX / Refused | KK: XX / KeyRejected | KeyRejected |
//! | AuthFailed         | Refused  | Refused     | KK: XX / Refused | KK: XX / Refused     | Refused     |
//! | KeyChanged         | KeyChanged | KeyChanged | KeyChanged     | KeyChanged           | KeyChanged  |
//! | Closed, Malformed  | Dropped  | Dropped     | Dropped          | Dropped              | Dropped     |
//! | Timeout            | TimedOut | TimedOut    | TimedOut         | TimedOut             | TimedOut    |
//! | Superseded         | Fresh    | Fresh       | Fresh            | Fresh                | Fresh       |
//!
//! "KK: XX" is [`Verdict::RetryWithXx`]: a KK attempt the hub could not read or refused is
//! retried at once with XX on a fresh carrier, inside the same connect. "Fresh" is
//! [`Verdict::RetryFresh`]: on a carrier whose channel from the hub outlives the session (MQTT,
//! where the hub's answers to another session of the identity may come first), message 1 was
//! built on a HELLO and offer unlike the hub's own; the attempt is retried at once on a fresh
//! carrier session, once per connect: when this connect already retried fresh, Superseded is
//! Dropped everywhere (a second time is malformed). A refusal once the hub has our static key
//! (Finishing, Settling: the hub closes within 750 ms of an XX handshake) means the hub has
//! another client key pinned for this access key. The cached PSK is forgotten whenever the hub
//! refused after the Noise handshake began (the cache may be the cause), and never for
//! Superseded.
//!
//! The evidence is what the reader received, also when a send fails first: a send that fails
//! because the hub already ended the session (a WebSocket send after the hub's close frame was
//! read, which tungstenite refuses with "Sending after closing is not allowed") has no evidence
//! of its own, and the attempt is judged at the same stage on the end its reader received (the
//! close code), exactly as if the read had reported it first; Closed only when the reader
//! ends without a close frame. This happens: the hub refuses a client key as soon as it reads
//! the last XX frame, and its close can be read before the encrypted HELLO goes out. The
//! Python SDK's WSS carrier raises the close frame received on a failed send, the Go SDK's
//! returns its reader's recorded failure; here [`crate::runtime::link`] waits for the reader's
//! end after a failed send ([`crate::carriers::Closed::after_end`]).
//!
//! **2. What the client does after a failure** ([`next_step`], [`WAITERS_SEE`]):
//!
//! - KeyChanged, KeyRejected: stop reconnecting (only a person can fix the pins);
//! - Refused: keep reconnecting on the schedule for [`REFUSAL_GIVE_UP`], then stop;
//! - Dropped, TimedOut: keep reconnecting on the schedule, for ever.
//!
//! A caller waiting for the link gets a Refused / KeyRejected / KeyChanged error at once and
//! waits through Dropped / TimedOut until its own timeout ([`waiter_gives_up`]).
//!
//! A message already sent is never sent again, with one exception: when the hub closes the
//! link saying it is going away or restarting (WebSocket 1001 or 1012,
//! [`RESTART_CLOSE_CODES`]), a request that has received nothing yet may be sent again, with
//! the same request id, once the link is back ([`resend_unanswered`]).
//!
//! [`crate::client`] applies this section: its requests wait for the supervised reconnect loop
//! (only with `auto_reconnect`) and its asks are sent again after a restart close.
//!
//! **3. When to reconnect** ([`RetrySchedule`]): every loss of the link starts the same loop.
//! Each delay is a base jittered down by up to half (so a fleet does not dial in step):
//!
//! | outage age         | base delay before the next retry                                        |
//! |--------------------|-------------------------------------------------------------------------|
//! | under a minute     | 1 s every time (a retry 0.5-1 s after the previous one: a hub restart)  |
//! | a minute or more   | 1 s doubled for every retry already made past the minute, at most 30 s |

use std::time::Duration;

use crate::errors::Error;

/// Where in one connect attempt a failure happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The carrier opens: TCP, TLS, WebSocket upgrade, HTTPS `/connect`, MQTT CONNACK.
    Opening,
    /// Cleartext HELLO and offer, before our Noise message 1 went out.
    Negotiating,
    /// Our Noise message 1 went out; the handshake is not complete.
    Handshake,
    /// The handshake is complete; the last XX frame or the encrypted HELLO goes out.
    Finishing,
    /// After XX: the window before the hub's first authenticated frame.
    Settling,
}

/// What the client saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Evidence {
    /// The carrier's refusal signal: HTTP 401/403, WSS close 1000/1005/1008, CONNACK not
    /// authorised.
    Refusal,
    /// The hub aborted the negotiation, or its Noise message did not decrypt.
    AuthFailed,
    /// The hub's static key differs from the pinned one.
    KeyChanged,
    /// Any other close, reset or failure to open.
    Closed,
    /// The hub sent something the protocol does not allow.
    Malformed,
    /// A phase did not finish in time.
    Timeout,
    /// Shared channel: message 1 was built on another session's HELLO and offer.
    Superseded,
}

/// What a failed attempt means; each verdict but the internal retries is one typed error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Internal: retry at once with XX, inside the same connect.
    RetryWithXx,
    /// Internal: retry at once on a fresh carrier session, inside the same connect, once.
    RetryFresh,
    /// [`Error::HubRefused`].
    Refused,
    /// [`Error::ClientKeyRejected`].
    KeyRejected,
    /// [`Error::HubKeyChanged`].
    KeyChanged,
    /// [`Error::Timeout`].
    TimedOut,
    /// [`Error::Connection`] (and every other error).
    Dropped,
}

/// The verdict on one failed attempt, and whether the cached PSK must be forgotten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    /// What the failure means.
    pub verdict: Verdict,
    /// Forget the cached PSK of this access key and node before anything else.
    pub forget_psk: bool,
}

const fn after_noise_began(stage: Stage) -> bool {
    matches!(stage, Stage::Handshake | Stage::Finishing)
}

const fn hub_knows_our_key(stage: Stage) -> bool {
    matches!(stage, Stage::Finishing | Stage::Settling)
}

/// The verdict on one failed attempt (the table of section 1); `kk` is true when the attempt
/// was a KKpsk0 handshake, `retried_fresh` when this connect already made its
/// [`Verdict::RetryFresh`] attempt.
pub const fn judge(stage: Stage, evidence: Evidence, kk: bool, retried_fresh: bool) -> Judgement {
    let verdict = match evidence {
        Evidence::Superseded if retried_fresh => Verdict::Dropped,
        Evidence::Superseded => Verdict::RetryFresh,
        Evidence::KeyChanged => Verdict::KeyChanged,
        Evidence::Timeout => Verdict::TimedOut,
        Evidence::Closed | Evidence::Malformed => Verdict::Dropped,
        // the hub said no: Refusal or AuthFailed
        Evidence::Refusal | Evidence::AuthFailed => {
            let forget_psk = after_noise_began(stage);
            if kk && after_noise_began(stage) {
                return Judgement { verdict: Verdict::RetryWithXx, forget_psk: true };
            }
            if matches!(evidence, Evidence::Refusal) && hub_knows_our_key(stage) {
                return Judgement { verdict: Verdict::KeyRejected, forget_psk: false };
            }
            return Judgement { verdict: Verdict::Refused, forget_psk };
        }
    };
    Judgement { verdict, forget_psk: false }
}

/// The verdict a typed connect error stands for: every error that is not a refusal, a pin
/// failure or a timeout is [`Verdict::Dropped`].
pub const fn verdict_of(error: &Error) -> Verdict {
    match error {
        Error::HubKeyChanged(_) => Verdict::KeyChanged,
        Error::ClientKeyRejected { .. } => Verdict::KeyRejected,
        Error::HubRefused(_) => Verdict::Refused,
        Error::Timeout(_) => Verdict::TimedOut,
        _ => Verdict::Dropped,
    }
}

/// What the reconnect loop does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Retry after the next delay of the [`RetrySchedule`].
    Retry,
    /// Stop reconnecting.
    Stop,
}

/// How long the hub may refuse without a break before the reconnect loop stops.
pub const REFUSAL_GIVE_UP: Duration = Duration::from_secs(600);

/// The verdicts a caller waiting for the link gets at once (it waits through the others).
pub const WAITERS_SEE: [Verdict; 3] = [Verdict::Refused, Verdict::KeyRejected, Verdict::KeyChanged];

/// After a failed attempt: retry (on the schedule) or stop. `refused_for` is how long the hub
/// has been refusing without a break (zero when the last failure was not a refusal).
pub fn next_step(error: &Error, refused_for: Duration) -> Step {
    match verdict_of(error) {
        Verdict::KeyChanged | Verdict::KeyRejected => Step::Stop,
        Verdict::Refused if refused_for >= REFUSAL_GIVE_UP => Step::Stop,
        _ => Step::Retry,
    }
}

/// True when a caller waiting for the link should get `error` now rather than wait on.
pub fn waiter_gives_up(error: &Error) -> bool {
    WAITERS_SEE.contains(&verdict_of(error))
}

/// The WebSocket close codes by which a hub says it is going away or restarting.
pub const RESTART_CLOSE_CODES: [u16; 2] = [1001, 1012];

/// Whether requests without any answer yet are sent again (same request id) after the link
/// closed with `close_code` (None: no close frame).
pub fn resend_unanswered(close_code: Option<u16>) -> bool {
    close_code.is_some_and(|code| RESTART_CLOSE_CODES.contains(&code))
}

/// The delays of the reconnect loop (section 3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetrySchedule {
    /// The base delay: every delay of the first minute, and the first after it.
    pub first: Duration,
    /// The growth per retry made with the link down for `restart_window` or more.
    pub factor: f64,
    /// The outage age up to which every base delay is `first`.
    pub restart_window: Duration,
    /// The longest base delay.
    pub cap: Duration,
    /// The largest fraction a delay is jittered down by.
    pub jitter: f64,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            factor: 2.0,
            restart_window: Duration::from_secs(60),
            cap: Duration::from_secs(30),
            jitter: 0.5,
        }
    }
}

impl RetrySchedule {
    /// The wait before the next retry, the link having been down for `down_for`;
    /// `late_retries` is how many retries were already made with the link down for
    /// `restart_window` or more (only those double the delay). `rand` is a draw in [0, 1)
    /// (clamped into it; NaN counts as 0): the delay is the base times `1 - jitter * rand`,
    /// so between half the base and the base with the default jitter.
    pub fn delay(&self, late_retries: u32, down_for: Duration, rand: f64) -> Duration {
        let base = if down_for < self.restart_window {
            self.first.as_secs_f64()
        } else {
            let doublings = i32::try_from(late_retries.min(32)).unwrap_or(32);
            (self.first.as_secs_f64() * self.factor.powi(doublings)).min(self.cap.as_secs_f64())
        };
        let rand = if rand.is_finite() { rand.clamp(0.0, 1.0 - f64::EPSILON) } else { 0.0 };
        Duration::from_secs_f64(base * (1.0 - self.jitter * rand))
    }

    /// Whether a retry made after `down_for` of outage counts as late (see [`Self::delay`]).
    pub fn is_late(&self, down_for: Duration) -> bool {
        down_for >= self.restart_window
    }
}

/// A uniform draw in [0, 1) from the operating system's randomness (0.5 if it is unavailable),
/// for [`RetrySchedule::delay`].
pub fn jitter_draw() -> f64 {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    use Evidence as E;
    use Stage as S;
    use Verdict as V;

    /// (stage, evidence, kk) -> (verdict, forget the cached PSK): the cells of the Python
    /// SDK's tests/sdk/test_failure_policy.py.
    const TABLE: [(Stage, Evidence, bool, Verdict, bool); 19] = [
        (S::Opening, E::Refusal, false, V::Refused, false),
        (S::Opening, E::Refusal, true, V::Refused, false),
        (S::Opening, E::Closed, false, V::Dropped, false),
        (S::Opening, E::Timeout, true, V::TimedOut, false),
        (S::Negotiating, E::Refusal, false, V::Refused, false),
        (S::Negotiating, E::AuthFailed, false, V::Refused, false),
        (S::Negotiating, E::Malformed, false, V::Dropped, false),
        (S::Handshake, E::Refusal, true, V::RetryWithXx, true),
        (S::Handshake, E::AuthFailed, true, V::RetryWithXx, true),
        (S::Handshake, E::Refusal, false, V::Refused, true),
        (S::Handshake, E::AuthFailed, false, V::Refused, true),
        (S::Handshake, E::KeyChanged, false, V::KeyChanged, false),
        (S::Handshake, E::Closed, true, V::Dropped, false),
        (S::Finishing, E::Refusal, true, V::RetryWithXx, true),
        (S::Finishing, E::Refusal, false, V::KeyRejected, false),
        (S::Finishing, E::AuthFailed, false, V::Refused, true),
        (S::Settling, E::Refusal, false, V::KeyRejected, false),
        (S::Settling, E::Closed, false, V::Dropped, false),
        (S::Settling, E::Timeout, false, V::TimedOut, false),
    ];

    const STAGES: [Stage; 5] = [S::Opening, S::Negotiating, S::Handshake, S::Finishing, S::Settling];
    const EVIDENCE: [Evidence; 7] =
        [E::Refusal, E::AuthFailed, E::KeyChanged, E::Closed, E::Malformed, E::Timeout, E::Superseded];

    /// The table of the module doc, written out cell by cell, in a connect that has not
    /// retried fresh yet.
    fn expected(stage: Stage, evidence: Evidence, kk: bool) -> (Verdict, bool) {
        match evidence {
            E::Superseded => (V::RetryFresh, false),
            E::KeyChanged => (V::KeyChanged, false),
            E::Closed | E::Malformed => (V::Dropped, false),
            E::Timeout => (V::TimedOut, false),
            E::Refusal | E::AuthFailed => match stage {
                S::Opening | S::Negotiating => (V::Refused, false),
                S::Handshake if kk => (V::RetryWithXx, true),
                S::Handshake => (V::Refused, true),
                S::Finishing if kk => (V::RetryWithXx, true),
                S::Finishing if evidence == E::Refusal => (V::KeyRejected, false),
                S::Finishing => (V::Refused, true),
                S::Settling if evidence == E::Refusal => (V::KeyRejected, false),
                S::Settling => (V::Refused, false),
            },
        }
    }

    #[test]
    fn the_python_sdks_verdict_cells() {
        for (stage, evidence, kk, verdict, forget) in TABLE {
            let judgement = judge(stage, evidence, kk, false);
            assert_eq!(judgement, Judgement { verdict, forget_psk: forget }, "{stage:?} {evidence:?} kk={kk}");
            // only a superseded negotiation asks whether a fresh retry was made
            assert_eq!(judge(stage, evidence, kk, true), judgement, "{stage:?} {evidence:?} kk={kk} retried fresh");
        }
    }

    /// The Python SDK's test_a_superseded_negotiation_is_retried_fresh_once: message 1 built on
    /// another session's HELLO and offer (a shared channel: MQTT) gets one fresh attempt at
    /// once, then an ordinary drop; the cached PSK is never at stake.
    #[test]
    fn a_superseded_negotiation_is_retried_fresh_once() {
        for stage in STAGES {
            for kk in [false, true] {
                let first = judge(stage, E::Superseded, kk, false);
                assert_eq!(first, Judgement { verdict: V::RetryFresh, forget_psk: false }, "{stage:?} kk={kk}");
                let again = judge(stage, E::Superseded, kk, true);
                assert_eq!(
                    again,
                    Judgement { verdict: V::Dropped, forget_psk: false },
                    "{stage:?} kk={kk} retried fresh"
                );
            }
        }
    }

    #[test]
    fn every_cell_of_the_verdict_table() {
        let mut cells = 0;
        for stage in STAGES {
            for evidence in EVIDENCE {
                for kk in [false, true] {
                    let (verdict, forget_psk) = expected(stage, evidence, kk);
                    assert_eq!(
                        judge(stage, evidence, kk, false),
                        Judgement { verdict, forget_psk },
                        "{stage:?} {evidence:?} kk={kk}"
                    );
                    // a connect that already retried fresh: only Superseded changes, to Dropped
                    let again = if evidence == E::Superseded {
                        Judgement { verdict: V::Dropped, forget_psk: false }
                    } else {
                        Judgement { verdict, forget_psk }
                    };
                    assert_eq!(judge(stage, evidence, kk, true), again, "{stage:?} {evidence:?} kk={kk} retried fresh");
                    cells += 1;
                }
            }
        }
        assert_eq!(cells, 5 * 7 * 2);
    }

    #[test]
    fn each_error_maps_to_its_verdict() {
        assert_eq!(verdict_of(&Error::HubKeyChanged("x".into())), V::KeyChanged);
        assert_eq!(verdict_of(&Error::ClientKeyRejected { message: "x".into(), key_folder: None }), V::KeyRejected);
        assert_eq!(verdict_of(&Error::HubRefused("x".into())), V::Refused);
        assert_eq!(verdict_of(&Error::Timeout("x".into())), V::TimedOut);
        assert_eq!(verdict_of(&Error::Connection("x".into())), V::Dropped);
        assert_eq!(verdict_of(&Error::Identity("x".into())), V::Dropped);
    }

    #[test]
    fn the_loop_stops_only_for_pins_and_long_refusals() {
        let zero = Duration::ZERO;
        let long = REFUSAL_GIVE_UP * 10;
        assert_eq!(next_step(&Error::HubKeyChanged("x".into()), zero), Step::Stop);
        assert_eq!(next_step(&Error::ClientKeyRejected { message: "x".into(), key_folder: None }, zero), Step::Stop);
        assert_eq!(next_step(&Error::HubRefused("x".into()), zero), Step::Retry);
        assert_eq!(next_step(&Error::HubRefused("x".into()), REFUSAL_GIVE_UP - Duration::from_millis(1)), Step::Retry);
        assert_eq!(next_step(&Error::HubRefused("x".into()), REFUSAL_GIVE_UP), Step::Stop);
        assert_eq!(next_step(&Error::Connection("x".into()), long), Step::Retry);
        assert_eq!(next_step(&Error::Timeout("x".into()), long), Step::Retry);
    }

    #[test]
    fn waiters_wait_through_drops_and_timeouts_only() {
        assert!(!waiter_gives_up(&Error::Connection("x".into())));
        assert!(!waiter_gives_up(&Error::Timeout("x".into())));
        assert!(waiter_gives_up(&Error::HubRefused("x".into())));
        assert!(waiter_gives_up(&Error::ClientKeyRejected { message: "x".into(), key_folder: None }));
        assert!(waiter_gives_up(&Error::HubKeyChanged("x".into())));
    }

    #[test]
    fn unanswered_requests_are_resent_only_after_a_restart_close() {
        assert!(resend_unanswered(Some(1001)));
        assert!(resend_unanswered(Some(1012)));
        for code in [None, Some(1000), Some(1005), Some(1006), Some(1008), Some(1011)] {
            assert!(!resend_unanswered(code), "{code:?}");
        }
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn approx(actual: Duration, expected: f64) -> bool {
        (actual.as_secs_f64() - expected).abs() < 1e-9
    }

    #[test]
    fn schedule_retries_every_half_to_one_second_during_the_first_minute() {
        let schedule = RetrySchedule::default();
        // the jitter draws in [0, 1): the delay spans (base/2, base]
        assert_eq!(schedule.delay(0, Duration::ZERO, 0.0), secs(1.0));
        assert!(approx(schedule.delay(0, Duration::ZERO, 0.999), 0.5005));
        // no doubling while the outage is younger than a minute, however many retries failed
        for down in [0.5, 10.0, 30.0, 59.9] {
            assert_eq!(schedule.delay(0, secs(down), 0.0), secs(1.0), "{down}");
            assert_eq!(schedule.delay(50, secs(down), 0.0), secs(1.0), "{down}");
            assert!(approx(schedule.delay(0, secs(down), 0.999), 0.5005), "{down}");
        }
        assert!(!schedule.is_late(secs(59.9)));
        assert!(schedule.is_late(secs(60.0)));
    }

    #[test]
    fn schedule_doubles_after_a_minute_up_to_thirty_seconds() {
        let schedule = RetrySchedule::default();
        let later: Vec<f64> = (0..8).map(|n| schedule.delay(n, secs(60.0 + f64::from(n)), 0.0).as_secs_f64()).collect();
        assert_eq!(later, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]);
        assert_eq!(schedule.delay(10_000, secs(10_000.0), 0.0), secs(30.0));
        assert!(approx(schedule.delay(10_000, secs(10_000.0), 0.999), 15.015));
        assert_eq!(schedule.delay(u32::MAX, secs(1e6), 0.0), secs(30.0));
    }

    #[test]
    fn the_draw_is_kept_in_range() {
        let schedule = RetrySchedule::default();
        for rand in [-1.0, 1.0, 2.0, f64::NAN, f64::INFINITY] {
            let delay = schedule.delay(0, Duration::ZERO, rand);
            assert!(delay >= secs(0.5) && delay <= secs(1.0), "{rand}: {delay:?}");
        }
        for _ in 0..100 {
            let draw = jitter_draw();
            assert!((0.0..1.0).contains(&draw), "{draw}");
        }
    }
}
