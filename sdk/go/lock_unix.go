//go:build unix

package thalovant

import (
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// withLock runs fn holding an exclusive flock on the lock file .<name>.lock beside path.
func withLock(path string, fn func() error) error {
	lockPath := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".lock")
	if err := refuseSymlink(lockPath); err != nil {
		return err
	}
	file, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return noiseStateErr("Cannot lock Noise state file %s", filepath.Base(path))
	}
	defer file.Close()
	for {
		err = syscall.Flock(int(file.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		return noiseStateErr("Cannot lock Noise state file %s", filepath.Base(path))
	}
	defer syscall.Flock(int(file.Fd()), syscall.LOCK_UN) //nolint:errcheck
	return fn()
}

func writableDir(dir string) bool {
	info, err := os.Stat(dir)
	return err == nil && info.IsDir() && unix.Access(dir, unix.W_OK) == nil
}
