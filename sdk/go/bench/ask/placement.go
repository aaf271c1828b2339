package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// placement keeps the server and the clients on different CPUs: the server on CPU 0, this
// process (every Go client) and the Python client it starts on the others. Left to the
// scheduler on a small machine, a client woken by the server's reply often runs on the
// server's own CPU and preempts it inside its write, so the ask time measured depends on where
// each process happened to land, not on the SDK. Both SDKs get the same placement.
type placement struct {
	serverCPUs []int
	clientCPUs []int
}

// newPlacement splits the CPUs this process may use; nil when there are fewer than two.
func newPlacement() *placement {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return nil
	}
	var cpus []int
	for cpu := 0; cpu < 1024; cpu++ {
		if allowed.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	if len(cpus) < 2 {
		return nil
	}
	return &placement{serverCPUs: cpus[:1], clientCPUs: cpus[1:]}
}

func (p *placement) String() string {
	if p == nil {
		return "left to the scheduler"
	}
	return fmt.Sprintf("server on CPU %v, clients on CPUs %v", p.serverCPUs, p.clientCPUs)
}

// pinServer moves every thread of the server process to the server's CPUs (threads it starts
// later inherit the placement).
func (p *placement) pinServer(pid int) error {
	if p == nil {
		return nil
	}
	return pinThreads(pid, p.serverCPUs)
}

// pinClients moves every thread of this process to the clients' CPUs (and with them every
// process this one starts from now on).
func (p *placement) pinClients() error {
	if p == nil {
		return nil
	}
	return pinThreads(os.Getpid(), p.clientCPUs)
}

func pinThreads(pid int, cpus []int) error {
	var set unix.CPUSet
	for _, cpu := range cpus {
		set.Set(cpu)
	}
	tasks, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	if err != nil {
		return err
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && err != unix.ESRCH {
			return fmt.Errorf("pin thread %d: %w", tid, err)
		}
	}
	return nil
}
