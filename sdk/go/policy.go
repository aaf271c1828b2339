package thalovant

import (
	"math"
	"time"
)

// The client's failure policy, in one place: what a failed connect means, and what comes next.
//
// This file mirrors the Python SDK's src/thalovant/runtime/policy.py section by section (the
// section numbers below are that module's); change both together, and keep both small tables.
// Its names are unexported: the policy is the client's behaviour, not API.
//
// 1. Judging one connect attempt. An attempt fails at a stage with some evidence; judge turns
// the pair (and whether the attempt was KK) into a verdict:
//
//	evidence \ stage   OPENING   NEGOTIATING  HANDSHAKE         FINISHING            SETTLING
//	REFUSAL            REFUSED   REFUSED      KK: XX / REFUSED  KK: XX / KEY_REJ.    KEY_REJECTED
//	AUTH_FAILED        REFUSED   REFUSED      KK: XX / REFUSED  KK: XX / REFUSED     REFUSED
//	KEY_CHANGED        KEY_CHANGED everywhere
//	CLOSED, MALFORMED  DROPPED everywhere
//	TIMEOUT            TIMED_OUT everywhere
//	SUPERSEDED         FRESH everywhere; DROPPED when this connect already retried fresh
//
// "KK: XX" is verdictRetryWithXX: a KK attempt the hub could not read or refused is retried at
// once with XX on a fresh carrier, inside the same connect. "FRESH" is verdictRetryFresh: on a
// carrier whose channel from the hub outlives the session (MQTT, where the hub's answers to
// another session of the identity may come first), message 1 was built on a HELLO and offer
// unlike the hub's own; the attempt is retried at once on a fresh carrier session, once per
// connect (a second time is malformed, DROPPED). A refusal once the hub has our
// static key (FINISHING, SETTLING) means the hub has another client key pinned for this access
// key. The cached PSK is forgotten whenever the hub refused after the Noise handshake began
// (the cache may be the cause).
//
// 2. What the client does after a failure (nextStep, waiterGivesUp): KEY_CHANGED and
// KEY_REJECTED stop reconnecting (only a person can fix the pins); REFUSED keeps reconnecting on
// the schedule for refusalGiveUp, then stops; DROPPED and TIMED_OUT keep reconnecting on the
// schedule for ever. A caller waiting for the link (Client.waitLink: any request made while it
// is down) gets a REFUSED / KEY_* error at once, and the error that stopped the loop once it
// has stopped; it waits through DROPPED / TIMED_OUT up to its own timeout. A message already
// sent is never sent again, except that an ask without any answer yet is sent again (same
// request id) once the link is back, after the hub closed the link saying it is going away or
// restarting (resendUnanswered; Client.onLost and Client.Ask).
//
// 3. When to reconnect (retrySchedule): every loss of the link starts the same loop. Each delay
// is a base jittered down by up to half, so a fleet does not dial in step:
//
//	outage age        base delay before the next retry
//	under a minute    1 s every time (a retry 0.5-1 s after the previous one: a hub restart)
//	a minute or more  1 s doubled for every retry already made past the minute, at most 30 s

// ------------------------------------------------------------------ 1. judging one attempt

// stage is where in one connect attempt a failure happened.
type stage int

const (
	stageOpening     stage = iota // the carrier opens: TCP, TLS, WebSocket upgrade, HTTPS /connect, MQTT CONNACK
	stageNegotiating              // cleartext HELLO and offer, before our Noise message 1 went out
	stageHandshake                // our Noise message 1 went out; the handshake is not complete
	stageFinishing                // the handshake is complete; the last XX frame or the encrypted HELLO goes out
	stageSettling                 // after XX: the window before the hub's first authenticated frame
)

// evidence is what the client saw.
type evidence int

const (
	evidenceRefusal    evidence = iota // the carrier's refusal signal: HTTP 401/403, WSS close 1000/1005/1008, CONNACK not authorised
	evidenceAuthFailed                 // the hub aborted the negotiation, or its Noise message did not decrypt
	evidenceKeyChanged                 // the hub's static key differs from the pinned one
	evidenceClosed                     // any other close, reset or failure to open
	evidenceMalformed                  // the hub sent something the protocol does not allow
	evidenceTimeout                    // a phase did not finish in time
	evidenceSuperseded                 // shared channel: message 1 was built on another session's HELLO and offer
)

// verdict is what a failed attempt means; each maps to one error kind.
type verdict int

const (
	verdictRetryWithXX verdict = iota // internal: at once, inside the same connect
	verdictRefused                    // ErrHubRefused
	verdictKeyRejected                // ErrClientKeyRejected
	verdictKeyChanged                 // ErrHubKeyChanged
	verdictTimedOut                   // ErrTimeout
	verdictDropped                    // ErrConnection
	verdictRetryFresh                 // internal: at once, inside the same connect, once
)

var verdictNames = [...]string{"retry-with-xx", "refused", "key-rejected", "key-changed", "timed-out", "dropped", "retry-fresh"}

func (v verdict) String() string { return verdictNames[v] }

// kind is the error kind a verdict stands for (nil for verdictRetryWithXX and
// verdictRetryFresh, which never leave a connect).
func (v verdict) kind() *Kind {
	switch v {
	case verdictRefused:
		return ErrHubRefused
	case verdictKeyRejected:
		return ErrClientKeyRejected
	case verdictKeyChanged:
		return ErrHubKeyChanged
	case verdictTimedOut:
		return ErrTimeout
	case verdictDropped:
		return ErrConnection
	}
	return nil
}

// judgement is the verdict on one failed attempt and whether to forget the cached PSK.
type judgement struct {
	verdict   verdict
	forgetPSK bool
}

// judge is the verdict on one failed attempt (the table of section 1); kk says the attempt
// used the KK pattern, retriedFresh that this connect already made its verdictRetryFresh
// attempt.
func judge(s stage, e evidence, kk, retriedFresh bool) judgement {
	switch e {
	case evidenceSuperseded:
		if retriedFresh {
			return judgement{verdictDropped, false}
		}
		return judgement{verdictRetryFresh, false}
	case evidenceKeyChanged:
		return judgement{verdictKeyChanged, false}
	case evidenceTimeout:
		return judgement{verdictTimedOut, false}
	case evidenceClosed, evidenceMalformed:
		return judgement{verdictDropped, false}
	}
	// the hub said no: refusal or auth-failed
	afterNoiseBegan := s == stageHandshake || s == stageFinishing
	hubKnowsOurKey := s == stageFinishing || s == stageSettling
	switch {
	case kk && afterNoiseBegan:
		return judgement{verdictRetryWithXX, true}
	case e == evidenceRefusal && hubKnowsOurKey:
		return judgement{verdictKeyRejected, false}
	}
	return judgement{verdictRefused, afterNoiseBegan}
}

// verdictOf is the verdict a typed connect error stands for; any other error is DROPPED.
func verdictOf(err error) verdict {
	switch {
	case errorsIs(err, ErrHubKeyChanged):
		return verdictKeyChanged
	case errorsIs(err, ErrClientKeyRejected):
		return verdictKeyRejected
	case errorsIs(err, ErrHubRefused):
		return verdictRefused
	case errorsIs(err, ErrTimeout):
		return verdictTimedOut
	}
	return verdictDropped
}

// ------------------------------------------------------------------ 2. what comes next

// step is what the reconnect loop does after a failed attempt.
type step int

const (
	stepRetry step = iota // retry, on the schedule
	stepStop              // stop reconnecting
)

// refusalGiveUp is how long the hub may refuse without a break before the loop stops.
const refusalGiveUp = 600 * time.Second

// nextStep says whether the reconnect loop retries after err or stops; refusedFor is how long
// the hub has been refusing without a break.
func nextStep(err error, refusedFor time.Duration) step {
	switch v := verdictOf(err); {
	case v == verdictKeyChanged || v == verdictKeyRejected:
		return stepStop
	case v == verdictRefused && refusedFor >= refusalGiveUp:
		return stepStop
	}
	return stepRetry
}

// waiterGivesUp is true when a caller waiting for the link should get err now (REFUSED,
// KEY_REJECTED, KEY_CHANGED); it waits through DROPPED and TIMED_OUT.
func waiterGivesUp(err error) bool {
	switch verdictOf(err) {
	case verdictRefused, verdictKeyRejected, verdictKeyChanged:
		return true
	}
	return false
}

// restartCloseCodes are the WebSocket close codes by which a hub says it is going away (1001)
// or restarting (1012).
var restartCloseCodes = map[int]bool{1001: true, 1012: true}

// resendUnanswered says whether asks without any answer yet are sent again once the link is
// back, after it closed with closeCode (0: no close code).
func resendUnanswered(closeCode int) bool { return restartCloseCodes[closeCode] }

// ------------------------------------------------------------------ 3. when to reconnect

// retrySchedule is the delays of the reconnect loop (section 3).
type retrySchedule struct {
	first         time.Duration // the base delay; the only one while the outage is young
	factor        float64       // the doubling past restartWindow
	restartWindow time.Duration // an outage younger than this is a hub restart
	cap           time.Duration // the largest base delay
	jitter        float64       // every delay is cut by up to this fraction
}

// defaultRetrySchedule is the schedule of every client.
var defaultRetrySchedule = retrySchedule{first: time.Second, factor: 2, restartWindow: time.Minute, cap: 30 * time.Second, jitter: 0.5}

// delay is how long to wait before the next retry, the link having been down for downFor;
// lateRetries counts the retries already made with the link down for restartWindow or more
// (only those double the delay). rand draws in [0, 1): the result lies in (base/2, base].
func (s retrySchedule) delay(lateRetries int, downFor time.Duration, rand func() float64) time.Duration {
	base := float64(s.first)
	if downFor >= s.restartWindow {
		base = math.Min(base*math.Pow(s.factor, float64(min(max(lateRetries, 0), 32))), float64(s.cap))
	}
	return time.Duration(base * (1 - s.jitter*rand()))
}
