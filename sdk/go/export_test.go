package thalovant

import "context"

// WaitConnected returns once c's link is up (nil) or ctx ends (its error); it waits on the
// client's link-state changes, never polls.
func WaitConnected(ctx context.Context, c *Client) error {
	for {
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		if c.Connected() {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitWaiting returns once at least n requests of c wait for its link (nil) or ctx ends.
func WaitWaiting(ctx context.Context, c *Client, n int) error {
	for {
		c.mu.Lock()
		changed, waiting := c.changed, c.waiting
		c.mu.Unlock()
		if waiting >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Resent is how many asks c sent again after the hub closed for a restart.
func Resent(c *Client) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resent
}
