package thalovant

import (
	"math"
	"testing"
	"time"
)

// The failure policy (policy.go): the verdict table, what the reconnect loop does next, and the
// retry schedule. The cells and cases are those of the Python SDK's
// tests/sdk/test_failure_policy.py, plus every other cell of the table.

type policyCell struct {
	stage    stage
	evidence evidence
	kk       bool
	verdict  verdict
	forget   bool
}

// pythonCells are the cells tests/sdk/test_failure_policy.py checks, in its order.
var pythonCells = []policyCell{
	{stageOpening, evidenceRefusal, false, verdictRefused, false},
	{stageOpening, evidenceRefusal, true, verdictRefused, false},
	{stageOpening, evidenceClosed, false, verdictDropped, false},
	{stageOpening, evidenceTimeout, true, verdictTimedOut, false},
	{stageNegotiating, evidenceRefusal, false, verdictRefused, false},
	{stageNegotiating, evidenceAuthFailed, false, verdictRefused, false},
	{stageNegotiating, evidenceMalformed, false, verdictDropped, false},
	{stageHandshake, evidenceRefusal, true, verdictRetryWithXX, true},
	{stageHandshake, evidenceAuthFailed, true, verdictRetryWithXX, true},
	{stageHandshake, evidenceRefusal, false, verdictRefused, true},
	{stageHandshake, evidenceAuthFailed, false, verdictRefused, true},
	{stageHandshake, evidenceKeyChanged, false, verdictKeyChanged, false},
	{stageHandshake, evidenceClosed, true, verdictDropped, false},
	{stageFinishing, evidenceRefusal, true, verdictRetryWithXX, true},
	{stageFinishing, evidenceRefusal, false, verdictKeyRejected, false},
	{stageFinishing, evidenceAuthFailed, false, verdictRefused, true},
	{stageSettling, evidenceRefusal, false, verdictKeyRejected, false},
	{stageSettling, evidenceClosed, false, verdictDropped, false},
	{stageSettling, evidenceTimeout, false, verdictTimedOut, false},
}

// theTable is the table of policy.go section 1, written out: for each evidence, the judgement
// per stage (opening, negotiating, handshake, finishing, settling), without and with KK, in a
// connect that has not retried fresh yet.
func theTable(e evidence, kk bool) [5]judgement {
	refused, forgetRefused := judgement{verdictRefused, false}, judgement{verdictRefused, true}
	xx, keyRejected := judgement{verdictRetryWithXX, true}, judgement{verdictKeyRejected, false}
	all := func(v verdict) [5]judgement {
		return [5]judgement{{v, false}, {v, false}, {v, false}, {v, false}, {v, false}}
	}
	switch {
	case e == evidenceRefusal && kk:
		return [5]judgement{refused, refused, xx, xx, keyRejected}
	case e == evidenceRefusal:
		return [5]judgement{refused, refused, forgetRefused, keyRejected, keyRejected}
	case e == evidenceAuthFailed && kk:
		return [5]judgement{refused, refused, xx, xx, refused}
	case e == evidenceAuthFailed:
		return [5]judgement{refused, refused, forgetRefused, forgetRefused, refused}
	case e == evidenceKeyChanged:
		return all(verdictKeyChanged)
	case e == evidenceClosed, e == evidenceMalformed:
		return all(verdictDropped)
	case e == evidenceSuperseded:
		return all(verdictRetryFresh)
	}
	return all(verdictTimedOut)
}

func TestPolicyJudgeEveryCell(t *testing.T) {
	cells := 0
	for e := evidenceRefusal; e <= evidenceSuperseded; e++ {
		for _, kk := range []bool{false, true} {
			row := theTable(e, kk)
			for s := stageOpening; s <= stageSettling; s++ {
				if got := judge(s, e, kk, false); got != row[s] {
					t.Errorf("judge(stage %d, evidence %d, kk %v) = %+v, want %+v", s, e, kk, got, row[s])
				}
				// only a superseded negotiation asks whether a fresh retry was made
				again := row[s]
				if e == evidenceSuperseded {
					again = judgement{verdictDropped, false}
				}
				if got := judge(s, e, kk, true); got != again {
					t.Errorf("judge(stage %d, evidence %d, kk %v, retried fresh) = %+v, want %+v", s, e, kk, got, again)
				}
				cells++
			}
		}
	}
	if cells != 7*2*5 {
		t.Fatalf("%d cells", cells)
	}
	for _, c := range pythonCells {
		want := judgement{c.verdict, c.forget}
		if got := judge(c.stage, c.evidence, c.kk, false); got != want {
			t.Errorf("Python cell %+v: judge = %+v", c, got)
		}
		if theTable(c.evidence, c.kk)[c.stage] != want {
			t.Errorf("Python cell %+v disagrees with the written-out table", c)
		}
	}
}

func TestPolicyVerdictOfEachError(t *testing.T) {
	rejected := &ClientKeyRejectedError{base: base{Kind: ErrClientKeyRejected, Message: "x"}}
	cases := []struct {
		err  error
		want verdict
	}{
		{newErr(ErrHubKeyChanged, "x"), verdictKeyChanged},
		{rejected, verdictKeyRejected},
		{newErr(ErrHubRefused, "x"), verdictRefused},
		{newErr(ErrTimeout, "x"), verdictTimedOut},
		{newErr(ErrConnection, "x"), verdictDropped},
	}
	for _, c := range cases {
		if got := verdictOf(c.err); got != c.want {
			t.Errorf("verdictOf(%v) = %v, want %v", c.err, got, c.want)
		}
		if kind := c.want.kind(); !errorsIs(c.err, kind) {
			t.Errorf("verdict %v stands for %v, not the kind of %v", c.want, kind, c.err)
		}
	}
}

func TestPolicyLoopStopsOnlyForPinsAndLongRefusals(t *testing.T) {
	rejected := &ClientKeyRejectedError{base: base{Kind: ErrClientKeyRejected, Message: "x"}}
	cases := []struct {
		err        error
		refusedFor time.Duration
		want       step
	}{
		{newErr(ErrHubKeyChanged, "x"), 0, stepStop},
		{rejected, 0, stepStop},
		{newErr(ErrHubRefused, "x"), 0, stepRetry},
		{newErr(ErrHubRefused, "x"), refusalGiveUp - time.Millisecond, stepRetry},
		{newErr(ErrHubRefused, "x"), refusalGiveUp, stepStop},
		{newErr(ErrConnection, "x"), refusalGiveUp * 10, stepRetry},
		{newErr(ErrTimeout, "x"), refusalGiveUp * 10, stepRetry},
	}
	for _, c := range cases {
		if got := nextStep(c.err, c.refusedFor); got != c.want {
			t.Errorf("nextStep(%v, %s) = %d, want %d", c.err, c.refusedFor, got, c.want)
		}
	}
	if refusalGiveUp != 600*time.Second {
		t.Fatalf("refusalGiveUp = %s, want the Python SDK's 600 s", refusalGiveUp)
	}
	if !IsFatalConnectError(rejected) || !IsFatalConnectError(newErr(ErrHubKeyChanged, "x")) ||
		IsFatalConnectError(newErr(ErrHubRefused, "x")) || IsFatalConnectError(nil) {
		t.Fatal("IsFatalConnectError disagrees with nextStep")
	}
}

func TestPolicyWaitersWaitThroughDropsAndTimeoutsOnly(t *testing.T) {
	rejected := &ClientKeyRejectedError{base: base{Kind: ErrClientKeyRejected, Message: "x"}}
	if waiterGivesUp(newErr(ErrConnection, "x")) || waiterGivesUp(newErr(ErrTimeout, "x")) {
		t.Fatal("a waiter gave up on a drop or a timeout")
	}
	if !waiterGivesUp(newErr(ErrHubRefused, "x")) || !waiterGivesUp(rejected) || !waiterGivesUp(newErr(ErrHubKeyChanged, "x")) {
		t.Fatal("a waiter waits through a refusal")
	}
}

func TestPolicyResendOnlyAfterRestartCloses(t *testing.T) {
	for _, code := range []int{1001, 1012} {
		if !resendUnanswered(code) {
			t.Errorf("close %d: no resend", code)
		}
	}
	for _, code := range []int{0, 1000, 1005, 1006, 1008, 1011, 4000} {
		if resendUnanswered(code) {
			t.Errorf("close %d: resend", code)
		}
	}
}

func constant(x float64) func() float64 { return func() float64 { return x } }

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func near(a, b time.Duration) bool { return math.Abs(float64(a-b)) <= float64(time.Microsecond) }

func TestPolicyScheduleEveryHalfToOneSecondDuringTheFirstMinute(t *testing.T) {
	s := defaultRetrySchedule
	// the jitter draws in [0, 1): the delay spans (base/2, base]
	if got := s.delay(0, 0, constant(0)); got != time.Second {
		t.Fatalf("first retry, no jitter: %s", got)
	}
	if got := s.delay(0, 0, constant(0.999)); !near(got, seconds(0.5005)) {
		t.Fatalf("first retry, most jitter: %s", got)
	}
	// no doubling while the outage is younger than a minute, however many retries failed
	for _, down := range []float64{0.5, 10, 30, 59.9} {
		for _, late := range []int{0, 5} {
			if got := s.delay(late, seconds(down), constant(0)); got != time.Second {
				t.Errorf("down %g s, %d late retries: %s", down, late, got)
			}
		}
		if got := s.delay(0, seconds(down), constant(0.999)); !near(got, seconds(0.5005)) {
			t.Errorf("down %g s, most jitter: %s", down, got)
		}
	}
}

func TestPolicyScheduleDoublesAfterAMinuteUpToThirtySeconds(t *testing.T) {
	s := defaultRetrySchedule
	want := []float64{1, 2, 4, 8, 16, 30, 30, 30}
	for n, w := range want {
		if got := s.delay(n, seconds(60+float64(n)), constant(0)); got != seconds(w) {
			t.Errorf("late retry %d: %s, want %g s", n, got, w)
		}
	}
	if got := s.delay(10_000, seconds(10_000), constant(0)); got != 30*time.Second {
		t.Fatalf("far out: %s", got)
	}
	if got := s.delay(10_000, seconds(10_000), constant(0.999)); !near(got, seconds(15.015)) {
		t.Fatalf("far out, most jitter: %s", got)
	}
}
