package carrier

import (
	"context"
	"strconv"
	"sync"
	"testing"
)

// The reader goroutine and Close both fail the queue when a link ends; any number of them
// at once leave exactly one failure (the first recorded) and no double close.
func TestQueueFailFromManyGoroutinesAtOnceKeepsOneFailure(t *testing.T) {
	for round := 0; round < 50; round++ {
		q := newQueue(1)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-start
				q.fail(&ClosedError{Message: "failure " + strconv.Itoa(i)})
			}(i)
		}
		close(start)
		wg.Wait()
		_, err := q.receive(context.Background())
		closed, ok := err.(*ClosedError)
		if !ok || closed != q.failure {
			t.Fatalf("round %d: receive gave %v, want the recorded failure %v", round, err, q.failure)
		}
		q.fail(&ClosedError{Message: "later"})
		if _, again := q.receive(context.Background()); again != err {
			t.Fatalf("round %d: a later fail replaced the failure: %v", round, again)
		}
	}
}
