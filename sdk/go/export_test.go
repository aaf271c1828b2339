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
