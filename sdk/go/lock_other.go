//go:build !unix

package thalovant

import "os"

// withLock runs fn; platforms without flock rely on the atomic renames alone.
func withLock(_ string, fn func() error) error { return fn() }

func writableDir(dir string) bool {
	info, err := os.Stat(dir)
	return err == nil && info.IsDir()
}
